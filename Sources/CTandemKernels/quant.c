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

// Q8_0, Q4_0, Q4_K and Q6_K weights are multiplied interleaved (tandem_quant_interleave): rows in groups of 8, a
// group's bytes block after block. A block is read as fields — its two-byte fields (the fp16 scales: d; d and dmin
// for Q4_K), then four-byte fields (Q4_K's 12 bytes of sub-block scales, then the quants; Q6_K's 16 sub-block scales,
// then its low and high bits in the order its kernel reads them), 4 bytes a piece — and each field of the group's 8
// rows lies side by side (16 or 32 bytes) before the next field. The same bytes as ggml's in another order; rows past
// the last whole group stay as ggml writes them.
static int interleaves(int format) { return format == TANDEM_Q8_0 || format == TANDEM_Q4_0 || format == TANDEM_Q4_K || format == TANDEM_Q6_K; }

// An interleaved format's two-byte fields: how many (the fp16 scales), and where they lie in ggml's block (at its
// end for Q6_K).
static inline int two_byte_fields(int format) { return format == TANDEM_Q4_K ? 2 : 1; }
static inline long two_byte_offset(int format) { return format == TANDEM_Q6_K ? (long)sizeof(block_q6_K) - 2 : 0; }

// Where four-byte field f lies in ggml's block: the bytes after the two-byte fields in order — but Q6_K's fields in
// the order its kernel reads them, so that a group's block is read front to back (read out of order, the block
// streamed from memory at a third of the speed): its 16 sub-block scales (ggml's bytes 192–207), then per half h
// and piece p < 8 the low bits of values 128h + 4p … and 128h + 32 + 4p … (ql bytes 64h + 4p and 64h + 32 + 4p)
// and their high bits (qh bytes 32h + 4p).
static inline long four_byte_offset(int format, long f) {
    if (format != TANDEM_Q6_K) return 2 * two_byte_fields(format) + 4 * f;
    if (f < 4) return 192 + 4 * f;
    const long half = (f - 4) / 24, piece = (f - 4) % 24 / 3, kind = (f - 4) % 3;
    return kind == 2 ? 128 + 32 * half + 4 * piece : 64 * half + 32 * kind + 4 * piece;
}

void tandem_gather_block(int format, const char *group, long b, int r, char *block) {
    const long bytes = tandem_quant_block_bytes(format);
    const int pairs = two_byte_fields(format);
    const long twos = two_byte_offset(format);
    const char *at = group + b * 8 * bytes;
    for (int f = 0; f < pairs; f++) memcpy(block + twos + 2 * f, at + 16 * f + 2 * r, 2);
    for (long f = 0; f < (bytes - 2 * pairs) / 4; f++) memcpy(block + four_byte_offset(format, f), at + 16 * pairs + 32 * f + 4 * r, 4);
}

// The inverse: ggml's bytes of a block into row r's block b of a group.
static void scatter_block(int format, const char *block, long b, int r, char *group) {
    const long bytes = tandem_quant_block_bytes(format);
    const int pairs = two_byte_fields(format);
    const long twos = two_byte_offset(format);
    char *at = group + b * 8 * bytes;
    for (int f = 0; f < pairs; f++) memcpy(at + 16 * f + 2 * r, block + twos + 2 * f, 2);
    for (long f = 0; f < (bytes - 2 * pairs) / 4; f++) memcpy(at + 16 * pairs + 32 * f + 4 * r, block + four_byte_offset(format, f), 4);
}

void tandem_quant_interleave(int format, void *w, long n, long k) {
    if (!interleaves(format) || n < 8) return;
    const long bytes = tandem_quant_block_bytes(format), blocks = k / tandem_quant_block_elements(format), row_bytes = blocks * bytes;
    char *rows = malloc((size_t)(8 * row_bytes));
    for (long group = 0; group + 8 <= n; group += 8) {
        char *at = (char *)w + group * row_bytes;
        memcpy(rows, at, (size_t)(8 * row_bytes));
        for (int r = 0; r < 8; r++) {
            for (long b = 0; b < blocks; b++) scatter_block(format, rows + r * row_bytes + b * bytes, b, r, at);
        }
    }
    free(rows);
}

#if defined(__x86_64__)
// An interleaved Q8_0 or Q4_0 group's 8 rows of `blocks` blocks into rows `k` floats apart: each piece's 8 bytes
// of two rows widened at once, times the two rows' scales, stored to each row.
__attribute__((target("avx2,fma,f16c"))) static void dequantize_group_avx2(int format, const char *group, long blocks, long k, float *out) {
    const long bytes = tandem_quant_block_bytes(format), pieces = (bytes - 2) / 4;
    for (long b = 0; b < blocks; b++, group += 8 * bytes) {
        const __m256 d = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)group));
        __m256 pair_scales[4];  // rows 2h and 2h + 1's scales, four lanes each
        for (int h = 0; h < 4; h++) pair_scales[h] = _mm256_permutevar8x32_ps(d, _mm256_setr_epi32(2 * h, 2 * h, 2 * h, 2 * h, 2 * h + 1, 2 * h + 1, 2 * h + 1, 2 * h + 1));
        for (long piece = 0; piece < pieces; piece++) {
            for (int h = 0; h < 4; h++) {
                const __m128i eight = _mm_loadl_epi64((const __m128i *)(group + 16 + 32 * piece + 8 * h));
                float *row = out + 2 * h * k + b * 32;
                if (format == TANDEM_Q8_0) {
                    const __m256 values = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(eight)), pair_scales[h]);
                    _mm_storeu_ps(row + 4 * piece, _mm256_castps256_ps128(values));
                    _mm_storeu_ps(row + k + 4 * piece, _mm256_extractf128_ps(values, 1));
                } else {
                    // Low nibbles: values 4·piece …; high nibbles: 16 + 4·piece …; both less 8.
                    const __m128i mask = _mm_set1_epi8(15), offset = _mm_set1_epi8(8);
                    const __m128i low = _mm_sub_epi8(_mm_and_si128(eight, mask), offset), high = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(eight, 4), mask), offset);
                    const __m256 lows = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(low)), pair_scales[h]);
                    const __m256 highs = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(high)), pair_scales[h]);
                    _mm_storeu_ps(row + 4 * piece, _mm256_castps256_ps128(lows));
                    _mm_storeu_ps(row + k + 4 * piece, _mm256_extractf128_ps(lows, 1));
                    _mm_storeu_ps(row + 16 + 4 * piece, _mm256_castps256_ps128(highs));
                    _mm_storeu_ps(row + k + 16 + 4 * piece, _mm256_extractf128_ps(highs, 1));
                }
            }
        }
    }
}
#endif

void tandem_dequantize_weight_rows(int format, const void *w, long n, long k, long first, long count, float *out) {
    const long row_bytes = k / tandem_quant_block_elements(format) * tandem_quant_block_bytes(format);
    const long grouped = interleaves(format) ? n / 8 * 8 : 0, elements = tandem_quant_block_elements(format);
    for (long j = first; j < first + count; j++) {
        float *values = out + (j - first) * k;
        if (j >= grouped) {
            tandem_dequantize_rows(format, (const char *)w + j * row_bytes, 1, k, values);
            continue;
        }
        const char *group = (const char *)w + j / 8 * 8 * row_bytes;
#if defined(__x86_64__)
        // Whole groups at once (Q8_0, Q4_0); rows of a group the range cuts, and the k-quants, block by block.
        if (has_avx2() && !is_k_quant(format) && j % 8 == 0 && j + 8 <= first + count) {
            dequantize_group_avx2(format, group, k / 32, k, values);
            j += 7;
            continue;
        }
#endif
        char block[sizeof(block_q6_K)];  // the largest interleaved block
        for (long b = 0; b < k / elements; b++) {
            tandem_gather_block(format, group, b, (int)(j % 8), block);
            tandem_dequantize_rows(format, block, 1, elements, values + b * elements);
        }
    }
}

// A block of `format` (ggml's bytes) · an input block quantized to Q8_0: d_w · d_x · Σ q_w · q_x.
static float block_product(int format, const char *w, const block_q8_0 *x) {
    int products = 0;
    float scale;
    if (format == TANDEM_Q8_0) {
        const block_q8_0 *block = (const block_q8_0 *)w;
        for (int j = 0; j < 32; j++) products += block->qs[j] * x->qs[j];
        scale = half_to_float(block->d);
    } else {
        const block_q4_0 *block = (const block_q4_0 *)w;
        for (int j = 0; j < 16; j++) products += ((block->qs[j] & 15) - 8) * x->qs[j] + ((block->qs[j] >> 4) - 8) * x->qs[16 + j];
        scale = half_to_float(block->d);
    }
    return scale * half_to_float(x->d) * (float)products;
}

// Row j of an interleaved weight · input row r (quantized to Q8_0), block by block.
static float row_portable(const quant_product *p, long j, long r) {
    const block_q8_0 *x = (const block_q8_0 *)p->x + r * p->blocks;
    const long bytes = tandem_quant_block_bytes(p->format);
    float sum = 0;
    if (j >= p->n / 8 * 8) {
        for (long b = 0; b < p->blocks; b++) sum += block_product(p->format, p->w + j * p->row_bytes + b * bytes, x + b);
        return sum;
    }
    char block[sizeof(block_q8_0)];
    for (long b = 0; b < p->blocks; b++) {
        tandem_gather_block(p->format, p->w + j / 8 * 8 * p->row_bytes, b, (int)(j % 8), block);
        sum += block_product(p->format, block, x + b);
    }
    return sum;
}

void tandem_quant_rows(const quant_product *p, quant_group_kernel group, quant_row_kernel row, long m, long first, long last, float *y) {
    const long n = p->n, grouped = group ? n / 8 * 8 : 0;
    for (long start = first / 8 * 8; start < last && start < grouped; start += 8) {
        for (long r = 0; r < m; r++) {
            float results[8];
            group(p, p->w + start * p->row_bytes, r, results);
            for (long j = start > first ? start : first; j < start + 8 && j < last; j++) y[r * n + j] = results[j - start];
        }
    }
    for (long j = first > grouped ? first : grouped; j < last; j++) {
        for (long r = 0; r < m; r++) y[r * n + j] = row(p, j, r);
    }
}

#if defined(__x86_64__)

// Eight interleaved rows (a group) against one input row: each 32 bytes of the group hold a 4-byte piece of each
// of the 8 rows, so one multiply-add takes the input piece broadcast against all eight, and each 32-bit lane
// gathers one row's sum — no horizontal sums, one weight stream, one conversion of the 8 scales per block.
// `p->scales` holds the input's block scales as floats; for Q4_0 `p->sums` holds each input block's 8 · Σ q (the
// nibbles' offset of 8, taken out of the integer products).
__attribute__((target("avx2,fma,f16c"))) static void group_q4_0_avx2(const quant_product *p, const char *group, long r, float *y) {
    const long blocks = p->blocks;
    const block_q8_0 *x = (const block_q8_0 *)p->x + r * blocks;
    const float *scales = p->scales + r * blocks;
    const int32_t *offsets = p->sums + r * blocks;
    const __m256i mask = _mm256_set1_epi8(15), ones = _mm256_set1_epi16(1);
    __m256 even = _mm256_setzero_ps(), odd = _mm256_setzero_ps();
    for (long b = 0; b < blocks; b++, group += 8 * sizeof(block_q4_0)) {
        const __m256 d = _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)group)), _mm256_set1_ps(scales[b]));
        const int8_t *input = x[b].qs;
        // 16 products per 16-bit lane at most 15 · 127 each: 30,480, inside int16.
        __m256i sums = _mm256_setzero_si256();
        for (int piece = 0; piece < 4; piece++) {
            const __m256i packed = _mm256_loadu_si256((const __m256i *)(group + 16 + 32 * piece));
            int32_t low, high;
            memcpy(&low, input + 4 * piece, 4);
            memcpy(&high, input + 16 + 4 * piece, 4);
            sums = _mm256_add_epi16(sums, _mm256_maddubs_epi16(_mm256_and_si256(packed, mask), _mm256_set1_epi32(low)));
            sums = _mm256_add_epi16(sums, _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(packed, 4), mask), _mm256_set1_epi32(high)));
        }
        const __m256 products = _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_madd_epi16(sums, ones), _mm256_set1_epi32(offsets[b])));
        if (b & 1) odd = _mm256_fmadd_ps(d, products, odd);
        else even = _mm256_fmadd_ps(d, products, even);
    }
    _mm256_storeu_ps(y, _mm256_add_ps(even, odd));
}

// As group_q4_0_avx2 for Q8_0: signed weights, so each piece goes through maddubs's sign trick and is widened to
// 32 bits at once (two products of 127 · 128 fill an int16).
__attribute__((target("avx2,fma,f16c"))) static void group_q8_0_avx2(const quant_product *p, const char *group, long r, float *y) {
    const long blocks = p->blocks;
    const block_q8_0 *x = (const block_q8_0 *)p->x + r * blocks;
    const float *scales = p->scales + r * blocks;
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 even = _mm256_setzero_ps(), odd = _mm256_setzero_ps();
    for (long b = 0; b < blocks; b++, group += 8 * sizeof(block_q8_0)) {
        const __m256 d = _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)group)), _mm256_set1_ps(scales[b]));
        const int8_t *input = x[b].qs;
        __m256i sums[2] = {_mm256_setzero_si256(), _mm256_setzero_si256()};
        for (int piece = 0; piece < 8; piece++) {
            const __m256i weights = _mm256_loadu_si256((const __m256i *)(group + 16 + 32 * piece));
            int32_t values;
            memcpy(&values, input + 4 * piece, 4);
            const __m256i pairs = _mm256_maddubs_epi16(_mm256_sign_epi8(weights, weights), _mm256_sign_epi8(_mm256_set1_epi32(values), weights));
            sums[piece & 1] = _mm256_add_epi32(sums[piece & 1], _mm256_madd_epi16(pairs, ones));
        }
        const __m256 products = _mm256_cvtepi32_ps(_mm256_add_epi32(sums[0], sums[1]));
        if (b & 1) odd = _mm256_fmadd_ps(d, products, odd);
        else even = _mm256_fmadd_ps(d, products, even);
    }
    _mm256_storeu_ps(y, _mm256_add_ps(even, odd));
}

#endif

void tandem_linear_quant(int format, int use_avx2, const void *xq, long m, long k, const void *w, long n, long first, long last, float *y) {
    if (is_k_quant(format)) return tandem_linear_quant_k(format, use_avx2, xq, m, k, w, n, first, last, y);
    const long blocks = k / 32;
    quant_product p = {format, (const char *)w, n, blocks * tandem_quant_block_bytes(format), blocks, xq, NULL, NULL};
#if defined(__x86_64__)
    if (use_avx2) {
        // Each input block's scale as a float, and 8 · Σ q for Q4_0's offset.
        const block_q8_0 *inputs = (const block_q8_0 *)xq;
        float *scales = malloc(sizeof(float) * (size_t)(m * blocks + 1));
        int32_t *offsets = malloc(sizeof(int32_t) * (size_t)(m * blocks + 1));
        for (long b = 0; b < m * blocks; b++) {
            scales[b] = half_to_float(inputs[b].d);
            int sum = 0;
            for (int i = 0; i < 32; i++) sum += inputs[b].qs[i];
            offsets[b] = 8 * sum;
        }
        p.scales = scales;
        p.sums = offsets;
        tandem_quant_rows(&p, format == TANDEM_Q8_0 ? group_q8_0_avx2 : group_q4_0_avx2, row_portable, m, first, last, y);
        free(scales);
        free(offsets);
        return;
    }
#endif
    tandem_quant_rows(&p, NULL, row_portable, m, first, last, y);
}
