// Matrix products with bfloat16 operands and fp32 sums (AVX-512 BF16: vdpbf16ps), over weights packed once
// at load so that one 512-bit load gives 16 output columns × 2 consecutive k — the layout the instruction
// multiplies against a broadcast pair of activations. Tiles of up to 8 input rows × 48 columns keep 24
// accumulators in registers; a chunk of 256 input rows stays in L2 while every column block passes over it.
#include "tandem_kernels.h"
#include <string.h>

long tandem_packed_bf16_elements(long n, long k) { return ((n + 15) / 16) * ((k + 1) / 2) * 32; }

void tandem_pack_bf16(const uint16_t *w, long n, long k, uint16_t *packed) {
    long pairs = (k + 1) / 2;
    memset(packed, 0, (size_t)tandem_packed_bf16_elements(n, k) * sizeof(uint16_t));
    for (long j = 0; j < n; j++) {
        uint16_t *block = packed + (j / 16) * pairs * 32 + (j % 16) * 2;
        for (long i = 0; i < k; i++) block[(i / 2) * 32 + (i % 2)] = w[j * k + i];
    }
}

#if defined(__x86_64__)
#include <immintrin.h>

int tandem_has_avx512_bf16(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512bf16");
}

#define TANDEM_BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))

TANDEM_BF16 void tandem_round_bf16(const float *x, long rows, long k, long ldx, uint16_t *out) {
    for (long r = 0; r < rows; r++) {
        const float *source = x + r * k;
        uint16_t *target = out + r * ldx;
        long i = 0;
        for (; i + 32 <= k; i += 32) {
            __m512bh pair = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(source + i + 16), _mm512_loadu_ps(source + i));
            _mm512_storeu_si512((void *)(target + i), (__m512i)pair);
        }
        if (i < k) {
            long rest = k - i;
            __mmask16 low = (__mmask16)(rest >= 16 ? 0xFFFF : ((1u << rest) - 1));
            __mmask16 high = (__mmask16)(rest > 16 ? ((1u << (rest - 16)) - 1) : 0);
            __m512bh pair = _mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(high, source + i + 16), _mm512_maskz_loadu_ps(low, source + i));
            _mm512_mask_storeu_epi16(target + i, (__mmask32)((1ull << rest) - 1), (__m512i)pair);
        }
        for (long pad = k; pad < ldx; pad++) target[pad] = 0;
    }
}

// ROWS input rows × COLUMNS blocks of 16 output columns, over `pairs` pairs of k.
TANDEM_BF16 static inline __attribute__((always_inline)) void tile(
    const int rows, const int columns, const uint16_t *x, long ldx, long pairs, const uint16_t *packed, float *y, long ldy, long valid) {
    __m512 acc[8][3];
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < columns; c++) acc[r][c] = _mm512_setzero_ps();
    for (long q = 0; q < pairs; q++) {
        // A few rows make a pass bound by reading the weights: fetch each column block's stream ahead.
        if (rows <= 4)
            for (int c = 0; c < columns; c++) _mm_prefetch((const char *)(packed + ((long)c * pairs + q + 16) * 32), _MM_HINT_T0);
        __m512i weights[3];
        for (int c = 0; c < columns; c++) weights[c] = _mm512_loadu_si512((const void *)(packed + ((long)c * pairs + q) * 32));
        for (int r = 0; r < rows; r++) {
            int32_t pair;
            memcpy(&pair, x + r * ldx + 2 * q, sizeof pair);
            __m512i broadcast = _mm512_set1_epi32(pair);
            for (int c = 0; c < columns; c++) acc[r][c] = _mm512_dpbf16_ps(acc[r][c], (__m512bh)broadcast, (__m512bh)weights[c]);
        }
    }
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < columns; c++) {
            long left = valid - c * 16;
            if (left >= 16) _mm512_storeu_ps(y + r * ldy + c * 16, acc[r][c]);
            else if (left > 0) _mm512_mask_storeu_ps(y + r * ldy + c * 16, (__mmask16)((1u << left) - 1), acc[r][c]);
        }
}

typedef void (*tile_function)(const uint16_t *, long, long, const uint16_t *, float *, long, long);
#define TILE(R, C)                                                                                                    \
    TANDEM_BF16 static void tile_##R##_##C(const uint16_t *x, long ldx, long pairs, const uint16_t *p, float *y, long ldy, long valid) { \
        tile(R, C, x, ldx, pairs, p, y, ldy, valid);                                                                  \
    }
#define TILES(R) TILE(R, 1) TILE(R, 2) TILE(R, 3)
TILES(1) TILES(2) TILES(3) TILES(4) TILES(5) TILES(6) TILES(7) TILES(8)
static const tile_function tiles[8][3] = {
    {tile_1_1, tile_1_2, tile_1_3}, {tile_2_1, tile_2_2, tile_2_3}, {tile_3_1, tile_3_2, tile_3_3}, {tile_4_1, tile_4_2, tile_4_3},
    {tile_5_1, tile_5_2, tile_5_3}, {tile_6_1, tile_6_2, tile_6_3}, {tile_7_1, tile_7_2, tile_7_3}, {tile_8_1, tile_8_2, tile_8_3},
};

TANDEM_BF16 void tandem_gemm_packed_bf16(
    const uint16_t *x, long ldx, long m, long k, const uint16_t *packed, long n, long first_block, long last_block, float *y) {
    long pairs = (k + 1) / 2;
    for (long r0 = 0; r0 < m; r0 += 256) {
        long r1 = r0 + 256 < m ? r0 + 256 : m;
        for (long block = first_block; block < last_block; block += 3) {
            int columns = last_block - block >= 3 ? 3 : (int)(last_block - block);
            for (long r = r0; r < r1; r += 8) {
                int rows = r1 - r >= 8 ? 8 : (int)(r1 - r);
                tiles[rows - 1][columns - 1](x + r * ldx, ldx, pairs, packed + block * pairs * 32, y + r * n + block * 16, n, n - block * 16);
            }
        }
    }
}

#else
int tandem_has_avx512_bf16(void) { return 0; }
void tandem_round_bf16(const float *x, long rows, long k, long ldx, uint16_t *out) {
    (void)x; (void)rows; (void)k; (void)ldx; (void)out;
}
void tandem_gemm_packed_bf16(
    const uint16_t *x, long ldx, long m, long k, const uint16_t *packed, long n, long first_block, long last_block, float *y) {
    (void)x; (void)ldx; (void)m; (void)k; (void)packed; (void)n; (void)first_block; (void)last_block; (void)y;
}
#endif
