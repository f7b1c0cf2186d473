// ggml's 8- and 4-bit block formats (Q8_0, Q4_0) and the products of their weights with activations quantized
// per block to 8 bits, as llama.cpp's vec_dot_q8_0_q8_0 and vec_dot_q4_0_q8_0 compute them.
#include "tandem_kernels.h"
#include "avx2_common.h"
#include "half.h"
#include "quant_k.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    uint16_t d;      // scale, fp16
    int8_t qs[32];   // values = qs · d
} block_q8_0;

typedef struct {
    uint16_t d;      // scale, fp16
    uint8_t qs[16];  // value j: (qs[j] & 15) − 8 for j < 16, (qs[j − 16] >> 4) − 8 after, times d
} block_q4_0;

_Static_assert(sizeof(block_q8_0) == 34, "block_q8_0 is 34 bytes, as ggml's");
_Static_assert(sizeof(block_q4_0) == 18, "block_q4_0 is 18 bytes, as ggml's");

// Whether this CPU runs the AVX2 paths, asked once (the quantizers run per row, on the decode path).
static int has_avx2(void) {
    static int cached = -1;
    if (cached < 0) cached = tandem_has_avx2();
    return cached;
}

long tandem_quant_block_bytes(int format) {
    switch (format) {
    case TANDEM_Q8_0: return (long)sizeof(block_q8_0);
    case TANDEM_Q4_0: return (long)sizeof(block_q4_0);
    case TANDEM_Q4_K: return (long)sizeof(block_q4_K);
    case TANDEM_Q6_K: return (long)sizeof(block_q6_K);
    default: return (long)sizeof(block_q8_K);
    }
}

static int is_k_quant(int format) { return format == TANDEM_Q4_K || format == TANDEM_Q6_K || format == TANDEM_Q8_K; }

long tandem_quant_block_elements(int format) { return is_k_quant(format) ? 256 : 32; }

int tandem_quant_input_format(int format) { return is_k_quant(format) ? TANDEM_Q8_K : TANDEM_Q8_0; }

#if defined(__x86_64__)
#include <immintrin.h>

// round(p) with C's roundf rule (halves away from zero), exactly: the truncation, plus one toward p's sign when the
// part cut off is at least a half (that part is exact in floating point).
__attribute__((target("avx2,fma,f16c"), always_inline)) static inline __m256i round_away(__m256 p) {
    const __m256 truncated = _mm256_round_ps(p, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    const __m256 sign = _mm256_and_ps(p, _mm256_set1_ps(-0.0f));
    const __m256 cut = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), _mm256_sub_ps(p, truncated));
    const __m256 step = _mm256_and_ps(_mm256_cmp_ps(cut, _mm256_set1_ps(0.5f), _CMP_GE_OQ), _mm256_or_ps(sign, _mm256_set1_ps(1.0f)));
    return _mm256_cvttps_epi32(_mm256_add_ps(truncated, step));
}

// Q8_0 blocks of a row, the reference's bytes (the same products x · (1 / d), the same rounding), eight lanes at a time.
__attribute__((target("avx2,fma,f16c"))) static void quantize_q8_0_avx2(const float *x, long blocks, block_q8_0 *out) {
    const __m256 magnitude = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    for (long b = 0; b < blocks; b++) {
        const float *values = x + b * 32;
        __m256 v[4];
        __m256 largest = _mm256_setzero_ps();
        for (int i = 0; i < 4; i++) {
            v[i] = _mm256_loadu_ps(values + 8 * i);
            largest = _mm256_max_ps(largest, _mm256_and_ps(v[i], magnitude));
        }
        __m128 half = _mm_max_ps(_mm256_castps256_ps128(largest), _mm256_extractf128_ps(largest, 1));
        half = _mm_max_ps(half, _mm_movehl_ps(half, half));
        half = _mm_max_ss(half, _mm_movehdup_ps(half));
        const float amax = _mm_cvtss_f32(half);
        const float d = amax / 127;
        const float id = d != 0 ? 1.0f / d : 0.0f;
        out[b].d = half_from_float(d);
        const __m256 scale = _mm256_set1_ps(id);
        __m256i q[4];
        for (int i = 0; i < 4; i++) q[i] = round_away(_mm256_mul_ps(v[i], scale));
        // int32 → int16 → int8; the packs interleave 128-bit lanes, the permutation restores the order.
        const __m256i words = _mm256_packs_epi32(q[0], q[1]), words2 = _mm256_packs_epi32(q[2], q[3]);
        const __m256i bytes = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(words, words2), _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        _mm256_storeu_si256((__m256i *)out[b].qs, bytes);
    }
}
#endif

void tandem_quantize_row(int format, const float *x, long k, void *out) {
    if (format == TANDEM_Q8_K) return tandem_quantize_row_q8_K(x, k, out);
    if (format == TANDEM_Q4_K) return tandem_quantize_row_q4_K(x, k, out);
    if (format == TANDEM_Q6_K) return tandem_quantize_row_q6_K(x, k, out);
#if defined(__x86_64__)
    if (format == TANDEM_Q8_0 && has_avx2()) return quantize_q8_0_avx2(x, k / 32, (block_q8_0 *)out);
#endif
    for (long b = 0; b < k / 32; b++) {
        const float *values = x + b * 32;
        if (format == TANDEM_Q8_0) {
            block_q8_0 *block = (block_q8_0 *)out + b;
            float amax = 0;
            for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(values[j]));
            const float d = amax / 127;
            const float id = d != 0 ? 1.0f / d : 0.0f;
            block->d = half_from_float(d);
            for (int j = 0; j < 32; j++) block->qs[j] = (int8_t)roundf(values[j] * id);
        } else {
            block_q4_0 *block = (block_q4_0 *)out + b;
            // The value of largest magnitude, sign kept, maps to −8.
            float amax = 0, max = 0;
            for (int j = 0; j < 32; j++) {
                if (amax < fabsf(values[j])) {
                    amax = fabsf(values[j]);
                    max = values[j];
                }
            }
            const float d = max / -8;
            const float id = d != 0 ? 1.0f / d : 0.0f;
            block->d = half_from_float(d);
            for (int j = 0; j < 16; j++) {
                int8_t low = (int8_t)(values[j] * id + 8.5f), high = (int8_t)(values[16 + j] * id + 8.5f);
                low = low < 15 ? low : 15;
                high = high < 15 ? high : 15;
                block->qs[j] = (uint8_t)low | (uint8_t)(high << 4);
            }
        }
    }
}

#if defined(__x86_64__)

// Eight values of a block: signed bytes to floats, times the scale.
__attribute__((target("avx2,fma,f16c"), always_inline)) static inline void store8(__m128i bytes, __m256 scale, float *out) {
    _mm256_storeu_ps(out, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(bytes)), scale));
}

__attribute__((target("avx2,fma,f16c"))) static void dequantize_avx2(int format, const void *w, long blocks, float *out) {
    for (long b = 0; b < blocks; b++) {
        float *values = out + b * 32;
        if (format == TANDEM_Q8_0) {
            const block_q8_0 *block = (const block_q8_0 *)w + b;
            const __m256 d = _mm256_set1_ps(_cvtsh_ss(block->d));
            const __m128i low = _mm_loadu_si128((const __m128i *)block->qs), high = _mm_loadu_si128((const __m128i *)(block->qs + 16));
            store8(low, d, values);
            store8(_mm_srli_si128(low, 8), d, values + 8);
            store8(high, d, values + 16);
            store8(_mm_srli_si128(high, 8), d, values + 24);
        } else {
            const block_q4_0 *block = (const block_q4_0 *)w + b;
            const __m256 d = _mm256_set1_ps(_cvtsh_ss(block->d));
            const __m128i packed = _mm_loadu_si128((const __m128i *)block->qs), eight = _mm_set1_epi8(8), mask = _mm_set1_epi8(15);
            const __m128i low = _mm_sub_epi8(_mm_and_si128(packed, mask), eight);
            const __m128i high = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(packed, 4), mask), eight);
            store8(low, d, values);
            store8(_mm_srli_si128(low, 8), d, values + 8);
            store8(high, d, values + 16);
            store8(_mm_srli_si128(high, 8), d, values + 24);
        }
    }
}
#endif

void tandem_dequantize_rows(int format, const void *w, long rows, long k, float *out) {
    if (is_k_quant(format)) return tandem_dequantize_k(format, has_avx2(), w, rows * (k / 256), out);
    const long blocks = rows * (k / 32);
#if defined(__x86_64__)
    if (has_avx2()) return dequantize_avx2(format, w, blocks, out);
#endif
    for (long b = 0; b < blocks; b++) {
        float *values = out + b * 32;
        if (format == TANDEM_Q8_0) {
            const block_q8_0 *block = (const block_q8_0 *)w + b;
            const float d = half_to_float(block->d);
            for (int j = 0; j < 32; j++) values[j] = block->qs[j] * d;
        } else {
            const block_q4_0 *block = (const block_q4_0 *)w + b;
            const float d = half_to_float(block->d);
            for (int j = 0; j < 16; j++) {
                values[j] = ((block->qs[j] & 15) - 8) * d;
                values[16 + j] = ((block->qs[j] >> 4) - 8) * d;
            }
        }
    }
}

// One weight row (k / 32 blocks of `format`) · one activation row quantized to Q8_0: Σ_b d_w · d_x · Σ q_w · q_x.
static float dot_portable(int format, const void *w, const block_q8_0 *x, long blocks) {
    float sum = 0;
    for (long b = 0; b < blocks; b++) {
        int products = 0;
        float scale;
        if (format == TANDEM_Q8_0) {
            const block_q8_0 *block = (const block_q8_0 *)w + b;
            for (int j = 0; j < 32; j++) products += block->qs[j] * x[b].qs[j];
            scale = half_to_float(block->d);
        } else {
            const block_q4_0 *block = (const block_q4_0 *)w + b;
            for (int j = 0; j < 16; j++) {
                products += ((block->qs[j] & 15) - 8) * x[b].qs[j] + ((block->qs[j] >> 4) - 8) * x[b].qs[16 + j];
            }
            scale = half_to_float(block->d);
        }
        sum += scale * half_to_float(x[b].d) * (float)products;
    }
    return sum;
}

#if defined(__x86_64__)

// Σ of the eight 32-bit lanes of x · y over signed bytes (|values| ≤ 127 in y's place: maddubs takes x unsigned),
// as floats.
__attribute__((target("avx2,fma,f16c"))) static inline __m256 products8(__m256i x, __m256i y) {
    const __m256i absolute = _mm256_sign_epi8(x, x);
    const __m256i signed_y = _mm256_sign_epi8(y, x);
    const __m256i pairs = _mm256_maddubs_epi16(absolute, signed_y);
    return _mm256_cvtepi32_ps(_mm256_madd_epi16(pairs, _mm256_set1_epi16(1)));
}

// A Q8_0 weight block times an input block: the 32 products summed in pairs, as eight float lanes.
__attribute__((target("avx2,fma,f16c"), always_inline)) static inline __m256 q8_products(const char *row, long b, const block_q8_0 *x) {
    return products8(_mm256_loadu_si256((const __m256i *)((const block_q8_0 *)row)[b].qs), _mm256_loadu_si256((const __m256i *)x[b].qs));
}

// A Q4_0 weight block's nibbles (0–15, not yet less 8) times an input block, as eight float lanes: the nibbles are
// unsigned, so maddubs takes them as they are; the − 8 is added per block from the input's sum (`offsets`).
__attribute__((target("avx2,fma,f16c"), always_inline)) static inline __m256 q4_products(const char *row, long b, const block_q8_0 *x) {
    // The 16 bytes' low nibbles are values 0–15, their high nibbles 16–31.
    const __m128i packed = _mm_loadu_si128((const __m128i *)((const block_q4_0 *)row)[b].qs);
    const __m256i nibbles = _mm256_and_si256(_mm256_insertf128_si256(_mm256_castsi128_si256(packed), _mm_srli_epi16(packed, 4), 1), _mm256_set1_epi8(15));
    const __m256i pairs = _mm256_maddubs_epi16(nibbles, _mm256_loadu_si256((const __m256i *)x[b].qs));
    return _mm256_cvtepi32_ps(_mm256_madd_epi16(pairs, _mm256_set1_epi16(1)));
}

// Block b's weight scale.
__attribute__((target("avx2,fma,f16c"), always_inline)) static inline float weight_scale(const int format, const char *row, long b) {
    return _cvtsh_ss(format == TANDEM_Q8_0 ? ((const block_q8_0 *)row)[b].d : ((const block_q4_0 *)row)[b].d);
}

// Block b of one weight row against the input: its products scaled into `accumulator`, its Q4_0 offset into
// `offset`.
__attribute__((target("avx2,fma,f16c"), always_inline)) static inline void add_block(
    const int format, const char *row, long b, const block_q8_0 *x, const float *scales, const float *offsets, __m256 *accumulator, float *offset) {
    const float d = weight_scale(format, row, b);
    const __m256 products = format == TANDEM_Q8_0 ? q8_products(row, b, x) : q4_products(row, b, x);
    *accumulator = _mm256_fmadd_ps(_mm256_set1_ps(d * scales[b]), products, *accumulator);
    if (format == TANDEM_Q4_0) *offset += d * offsets[b];
}

// One weight row against one input row, two blocks a step on two multiply-add chains (one chain waits on each
// block's scale). `scales` holds the input's block scales as floats; for Q4_0 `offsets` holds each input block's
// −8 · scale · Σ q (the nibbles' offset of 8, taken out of the integer products).
__attribute__((target("avx2,fma,f16c"), always_inline)) static inline float one_row(
    const int format, const char *row, const block_q8_0 *x, const float *scales, const float *offsets, long blocks) {
    __m256 even = _mm256_setzero_ps(), odd = _mm256_setzero_ps();
    float even_offset = 0, odd_offset = 0;
    long b = 0;
    for (; b + 2 <= blocks; b += 2) {
        add_block(format, row, b, x, scales, offsets, &even, &even_offset);
        add_block(format, row, b + 1, x, scales, offsets, &odd, &odd_offset);
    }
    if (b < blocks) add_block(format, row, b, x, scales, offsets, &even, &even_offset);
    return tandem_sum8(_mm256_add_ps(even, odd)) + even_offset + odd_offset;
}

// Weight rows first ..< last against m input rows: each weight row is read once (it stays in L1 while the input
// rows, in L2, pass it). `scales` and `offsets` hold each input row's `blocks` entries, row after row.
__attribute__((target("avx2,fma,f16c"))) static void rows_avx2(
    int format, const char *w, long row_bytes, long first, long last, const block_q8_0 *x, long m, long n, const float *scales,
    const float *offsets, long blocks, float *y) {
    for (long j = first; j < last; j++) {
        const char *row = w + j * row_bytes;
        for (long r = 0; r < m; r++) {
            const long at = r * blocks;
            y[r * n + j] = format == TANDEM_Q8_0 ? one_row(TANDEM_Q8_0, row, x + at, scales + at, offsets + at, blocks)
                                                 : one_row(TANDEM_Q4_0, row, x + at, scales + at, offsets + at, blocks);
        }
    }
}
#endif

void tandem_linear_quant(int format, int use_avx2, const void *xq, long m, long k, const void *w, long n, long first, long last, float *y) {
    if (is_k_quant(format)) return tandem_linear_quant_k(format, use_avx2, xq, m, k, w, n, first, last, y);
    const long blocks = k / 32;
    const long row_bytes = blocks * tandem_quant_block_bytes(format);
    const block_q8_0 *inputs = (const block_q8_0 *)xq;
#if defined(__x86_64__)
    if (use_avx2) {
        // Each input block's scale as a float, and its −8 · scale · Σ q for Q4_0's offset.
        float *scales = malloc(sizeof(float) * (size_t)(2 * m * blocks + 1));
        float *offsets = scales + m * blocks;
        for (long b = 0; b < m * blocks; b++) {
            scales[b] = half_to_float(inputs[b].d);
            int sum = 0;
            for (int i = 0; i < 32; i++) sum += inputs[b].qs[i];
            offsets[b] = -8.0f * scales[b] * (float)sum;
        }
        rows_avx2(format, (const char *)w, row_bytes, first, last, inputs, m, n, scales, offsets, blocks, y);
        free(scales);
        return;
    }
#endif
    for (long j = first; j < last; j++) {
        const char *row = (const char *)w + j * row_bytes;
        for (long r = 0; r < m; r++) y[r * n + j] = dot_portable(format, row, inputs + r * blocks, blocks);
    }
}
