// ggml's k-quant block formats (Q4_K, Q6_K: 256 values a super-block) and the products of their weights with
// activations quantized to Q8_K, as llama.cpp's vec_dot_q4_K_q8_K and vec_dot_q6_K_q8_K compute them: integer
// products per sub-block, scaled by the sub-block's integer scale, then by the two super-block scales.
#include "tandem_kernels.h"
#include "avx2_common.h"
#include "half.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "quant_k.h"

_Static_assert(sizeof(block_q4_K) == 144, "block_q4_K is 144 bytes, as ggml's");
_Static_assert(sizeof(block_q6_K) == 210, "block_q6_K is 210 bytes, as ggml's");
_Static_assert(sizeof(block_q8_K) == 292, "block_q8_K is 292 bytes, as ggml's");

// Sub-block j's 6-bit scale and 6-bit minimum of a Q4_K super-block: j < 4 in the low six bits of bytes j and
// j + 4; j ≥ 4 split between the low (scale) or high (minimum) nibble of byte j + 4 and the top two bits of
// bytes j − 4 (scale) and j (minimum).
static inline void q4_K_scale_min(int j, const uint8_t *packed, int *scale, int *minimum) {
    if (j < 4) {
        *scale = packed[j] & 63;
        *minimum = packed[j + 4] & 63;
    } else {
        *scale = (packed[j + 4] & 15) | ((packed[j - 4] >> 6) << 4);
        *minimum = (packed[j + 4] >> 4) | ((packed[j] >> 6) << 4);
    }
}

// Q4_K value i of a super-block (0–15, before scale and minimum): 64-value groups, each 32 bytes whose low
// nibbles are the group's first 32 values and high nibbles the next 32.
static inline int q4_K_nibble(const block_q4_K *block, int i) {
    const int group = i / 64, within = i % 64;
    const uint8_t byte = block->qs[group * 32 + within % 32];
    return within < 32 ? byte & 15 : byte >> 4;
}

// Q6_K value i of a super-block (−32 … 31): 128-value halves; within one, value l + 32·q (l < 32, q < 4) has its low
// four bits in ql (byte l or l + 32, low or high nibble) and its high two in qh[l] (bits 2q, 2q + 1).
static inline int q6_K_value(const block_q6_K *block, int i) {
    const int half = i / 128, within = i % 128, l = within % 32, quarter = within / 32;
    const uint8_t *ql = block->ql + half * 64, *qh = block->qh + half * 32;
    const int low = (quarter & 1 ? ql[l + 32] : ql[l]);
    const int nibble = quarter < 2 ? low & 15 : low >> 4;
    return (nibble | (((qh[l] >> (2 * quarter)) & 3) << 4)) - 32;
}

// Q6_K value i's sub-block (16 values a sub-block, scales in value order).
static inline int q6_K_scale(const block_q6_K *block, int i) { return block->scales[i / 16]; }

void tandem_quantize_row_q8_K(const float *x, long k, void *out) {
    for (long b = 0; b < k / 256; b++) {
        const float *values = x + b * 256;
        block_q8_K *block = (block_q8_K *)out + b;
        // The value of largest magnitude, sign kept, maps to −127; values round to nearest, ties to even.
        float amax = 0, max = 0;
        for (int j = 0; j < 256; j++) {
            if (fabsf(values[j]) > amax) {
                amax = fabsf(values[j]);
                max = values[j];
            }
        }
        if (amax == 0) {
            memset(block, 0, sizeof *block);
            continue;
        }
        const float iscale = -127.0f / max;
        for (int j = 0; j < 256; j++) {
            const int v = (int)nearbyintf(iscale * values[j]);
            block->qs[j] = (int8_t)(v < 127 ? v : 127);
        }
        for (int j = 0; j < 16; j++) {
            int sum = 0;
            for (int i = 0; i < 16; i++) sum += block->qs[j * 16 + i];
            block->bsums[j] = (int16_t)sum;
        }
        block->d = 1 / iscale;
    }
}

// One weight row (k / 256 super-blocks) against one Q8_K input row: per super-block, the integer products of each
// sub-block times its scale, then d_w · d_x (and for Q4_K, less dmin_w · d_x · Σ minimum · the input's sums).
static float dot_k_portable(int format, const void *w, const block_q8_K *x, long blocks) {
    float sum = 0;
    for (long b = 0; b < blocks; b++) {
        if (format == TANDEM_Q4_K) {
            const block_q4_K *block = (const block_q4_K *)w + b;
            int scaled = 0, minimums = 0;
            for (int j = 0; j < 8; j++) {
                int scale, minimum, products = 0;
                q4_K_scale_min(j, block->scales, &scale, &minimum);
                for (int i = j * 32; i < j * 32 + 32; i++) products += q4_K_nibble(block, i) * x[b].qs[i];
                scaled += scale * products;
                minimums += minimum * (x[b].bsums[2 * j] + x[b].bsums[2 * j + 1]);
            }
            sum += half_to_float(block->d) * x[b].d * (float)scaled - half_to_float(block->dmin) * x[b].d * (float)minimums;
        } else {
            const block_q6_K *block = (const block_q6_K *)w + b;
            int scaled = 0;
            for (int s = 0; s < 16; s++) {
                int products = 0;
                for (int i = s * 16; i < s * 16 + 16; i++) products += q6_K_value(block, i) * x[b].qs[i];
                scaled += block->scales[s] * products;
            }
            sum += half_to_float(block->d) * x[b].d * (float)scaled;
        }
    }
    return sum;
}

#if defined(__x86_64__)
#include <immintrin.h>

// Sub-block scales (bytes 0–7) and minimums (bytes 8–15) of a Q4_K super-block, four at a time in 32-bit words:
// the layout of q4_K_scale_min, with the 12 bytes as words a, b, c.
static inline void q4_K_scales_mins(const uint8_t *packed, uint8_t unpacked[16]) {
    uint32_t a, b, c;
    memcpy(&a, packed, 4);
    memcpy(&b, packed + 4, 4);
    memcpy(&c, packed + 8, 4);
    const uint32_t words[4] = {
        a & 0x3f3f3f3fu,                                               // scales 0–3
        (c & 0x0f0f0f0fu) | (((a >> 6) & 0x03030303u) << 4),           // scales 4–7
        b & 0x3f3f3f3fu,                                               // minimums 0–3
        ((c >> 4) & 0x0f0f0f0fu) | (((b >> 6) & 0x03030303u) << 4),    // minimums 4–7
    };
    memcpy(unpacked, words, 16);
}

// Group g (64 values) of a Q4_K super-block's 128 bytes: its first 32 values (the low nibbles) and its next 32
// (the high nibbles), unsigned.
__attribute__((target("avx2,fma,f16c"), always_inline)) static inline void q4_K_group(const uint8_t *qs, int g, __m256i nibbles[2]) {
    const __m256i packed = _mm256_loadu_si256((const __m256i *)(qs + 32 * g)), low_mask = _mm256_set1_epi8(15);
    nibbles[0] = _mm256_and_si256(packed, low_mask);
    nibbles[1] = _mm256_and_si256(_mm256_srli_epi16(packed, 4), low_mask);
}

// A Q6_K half super-block (ql: 64 bytes, qh: 32) as its four quarters of 32 values, unsigned (0–63: the stored
// value + 32), in the layout of q6_K_value.
__attribute__((target("avx2,fma,f16c"), always_inline)) static inline void q6_K_quarters(const uint8_t *ql, const uint8_t *qh, __m256i quarters[4]) {
    const __m256i low_mask = _mm256_set1_epi8(15), two_bits = _mm256_set1_epi8(3);
    const __m256i l0 = _mm256_loadu_si256((const __m256i *)ql), l1 = _mm256_loadu_si256((const __m256i *)(ql + 32));
    const __m256i h = _mm256_loadu_si256((const __m256i *)qh);
    quarters[0] = _mm256_or_si256(_mm256_and_si256(l0, low_mask), _mm256_slli_epi16(_mm256_and_si256(h, two_bits), 4));
    quarters[1] = _mm256_or_si256(_mm256_and_si256(l1, low_mask), _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 2), two_bits), 4));
    quarters[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), low_mask), _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 4), two_bits), 4));
    quarters[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), low_mask), _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 6), two_bits), 4));
}

// Eight interleaved Q6_K rows (a group) against one Q8_K input row, each 32-bit lane one row's sums: per
// super-block the rows' d (8 at once), then 52 four-byte fields of the 8 rows side by side: 4 of sub-block scales,
// then for half h and piece p < 8 three — low bits of values 128h + 4p … + 3 (low nibbles) and 128h + 64 + 4p …
// (high nibbles); low bits of values 128h + 32 + 4p … and 128h + 96 + 4p …; the two high bits of all four. The
// values are rebuilt unsigned (0–63) and taken against the input's 4 bytes broadcast (maddubs); the −32 offset
// comes out per 16-value sub-block with the input's sums (bsums), times the rows' scales.
__attribute__((target("avx2,fma,f16c"))) static void group_q6_K_avx2(const quant_product *p, const char *group, long r, float *y) {
    const long blocks = p->blocks;
    const block_q8_K *x = (const block_q8_K *)p->x + r * blocks;
    const __m256i low_mask = _mm256_set1_epi8(15), high_bits = _mm256_set1_epi8(0x30);
    // Byte t of each row's 32-bit lane into the high byte of both 16-bit halves (a signed scale after a shift by 8).
    __m256i scale_of[4];
    for (int t = 0; t < 4; t++) {
        scale_of[t] = _mm256_setr_epi8(-1, t, -1, t, -1, 4 + t, -1, 4 + t, -1, 8 + t, -1, 8 + t, -1, 12 + t, -1, 12 + t,
                                       -1, t, -1, t, -1, 4 + t, -1, 4 + t, -1, 8 + t, -1, 8 + t, -1, 12 + t, -1, 12 + t);
    }
    __m256 sum = _mm256_setzero_ps();
    for (long b = 0; b < blocks; b++, group += 8 * sizeof(block_q6_K)) {
        const __m256 d = _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)group)), _mm256_set1_ps(x[b].d));
        const char *scale_words = group + 16, *pieces = scale_words + 4 * 32;
        const int8_t *input = x[b].qs;
        __m256i accumulator = _mm256_setzero_si256(), offsets = _mm256_setzero_si256();
        for (int half = 0; half < 2; half++) {
            for (int high = 0; high < 2; high++) {
                // Sub-blocks 8·half + 2m + high (m = 0…3): their scales, and Σ scale · bsum for the offset.
                __m256i scales[4];
                for (int m = 0; m < 4; m++) {
                    const int sub = 8 * half + 2 * m + high;
                    const __m256i word = _mm256_loadu_si256((const __m256i *)(scale_words + 32 * (sub / 4)));
                    scales[m] = _mm256_srai_epi16(_mm256_shuffle_epi8(word, scale_of[sub % 4]), 8);
                    offsets = _mm256_add_epi32(offsets, _mm256_madd_epi16(scales[m], _mm256_set1_epi32((uint16_t)x[b].bsums[sub])));
                }
                // Two pieces' products per 16-bit lane at most, 4 · 63 · 128 = 32,256: inside int16.
                for (int pair = 0; pair < 2; pair++) {
                    __m256i sums[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256()};
                    for (int i = 0; i < 2; i++) {
                        const int piece = 4 * high + 2 * pair + i, l = 4 * piece;
                        const char *fields = pieces + 32 * 3 * (8 * half + piece);
                        const __m256i a = _mm256_loadu_si256((const __m256i *)fields);
                        const __m256i c = _mm256_loadu_si256((const __m256i *)(fields + 32));
                        const __m256i h = _mm256_loadu_si256((const __m256i *)(fields + 64));
                        const __m256i values[4] = {
                            _mm256_or_si256(_mm256_and_si256(a, low_mask), _mm256_and_si256(_mm256_slli_epi16(h, 4), high_bits)),
                            _mm256_or_si256(_mm256_and_si256(c, low_mask), _mm256_and_si256(_mm256_slli_epi16(h, 2), high_bits)),
                            _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(a, 4), low_mask), _mm256_and_si256(h, high_bits)),
                            _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(c, 4), low_mask), _mm256_and_si256(_mm256_srli_epi16(h, 2), high_bits)),
                        };
                        for (int m = 0; m < 4; m++) {
                            int32_t bytes;
                            memcpy(&bytes, input + 128 * half + 32 * m + l, 4);
                            sums[m] = _mm256_add_epi16(sums[m], _mm256_maddubs_epi16(values[m], _mm256_set1_epi32(bytes)));
                        }
                    }
                    for (int m = 0; m < 4; m++) accumulator = _mm256_add_epi32(accumulator, _mm256_madd_epi16(sums[m], scales[m]));
                }
            }
        }
        accumulator = _mm256_sub_epi32(accumulator, _mm256_slli_epi32(offsets, 5));
        sum = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(accumulator), sum);
    }
    _mm256_storeu_ps(y, sum);
}

// Eight interleaved Q4_K rows (a group) against one Q8_K input row, each 32-bit lane one row's sums: per
// super-block the rows' d and dmin (8 at once), their packed scale words a, b, c side by side (unpacked for all 8
// rows with the bit operations of q4_K_scales_mins), then 32 pieces of 4 bytes of each row. Piece p holds values
// 64·(p / 8) + 4·(p % 8) … + 3 in its low nibbles (sub-block 2·(p / 8)) and the same + 32 in its high nibbles (the
// next sub-block): one maddubs takes the input's 4 bytes broadcast against the 8 rows. `pairs` holds each input
// super-block's 32-value sums two to a word (sub-blocks 2i and 2i + 1 in the low and high 16 bits), for the minimums.
__attribute__((target("avx2,fma,f16c"))) static void group_q4_K_avx2(const quant_product *p, const char *group, long r, float *y) {
    const long blocks = p->blocks;
    const block_q8_K *x = (const block_q8_K *)p->x + r * blocks;
    const int32_t *pairs = p->sums + 4 * r * blocks;
    const __m256i low_mask = _mm256_set1_epi8(15), six_bits = _mm256_set1_epi8(63), four_bits = _mm256_set1_epi8(15), two_bits = _mm256_set1_epi8(3);
    // Byte t of each row's 32-bit lane into both 16-bit halves (a scale against a pair of 16-bit sums), and bytes
    // t, t + 1 into the halves (two minimums against two sums).
    __m256i scale_of[4], minimums_of[2];
    for (int t = 0; t < 4; t++) {
        scale_of[t] = _mm256_setr_epi8(t, -1, t, -1, 4 + t, -1, 4 + t, -1, 8 + t, -1, 8 + t, -1, 12 + t, -1, 12 + t, -1,
                                       t, -1, t, -1, 4 + t, -1, 4 + t, -1, 8 + t, -1, 8 + t, -1, 12 + t, -1, 12 + t, -1);
    }
    for (int t = 0; t < 2; t++) {
        const int u = 2 * t;
        minimums_of[t] = _mm256_setr_epi8(u, -1, u + 1, -1, 4 + u, -1, 5 + u, -1, 8 + u, -1, 9 + u, -1, 12 + u, -1, 13 + u, -1,
                                          u, -1, u + 1, -1, 4 + u, -1, 5 + u, -1, 8 + u, -1, 9 + u, -1, 12 + u, -1, 13 + u, -1);
    }
    __m256 sum = _mm256_setzero_ps(), minimums = _mm256_setzero_ps();
    for (long b = 0; b < blocks; b++, group += 8 * sizeof(block_q4_K)) {
        const __m256 scale = _mm256_set1_ps(x[b].d);
        const __m256 d = _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)group)), scale);
        const __m256 dmin = _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(group + 16))), scale);
        const __m256i a = _mm256_loadu_si256((const __m256i *)(group + 32)), words_b = _mm256_loadu_si256((const __m256i *)(group + 64));
        const __m256i c = _mm256_loadu_si256((const __m256i *)(group + 96));
        // Each row's sub-block scales 0–3 and 4–7, and minimums 0–3 and 4–7, a byte each.
        const __m256i scales[2] = {
            _mm256_and_si256(a, six_bits),
            _mm256_or_si256(_mm256_and_si256(c, four_bits), _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(a, 6), two_bits), 4)),
        };
        const __m256i mins[2] = {
            _mm256_and_si256(words_b, six_bits),
            _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi32(c, 4), four_bits), _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(words_b, 6), two_bits), 4)),
        };
        __m256i minimum_products = _mm256_setzero_si256();
        for (int i = 0; i < 4; i++) {
            minimum_products = _mm256_add_epi32(minimum_products, _mm256_madd_epi16(_mm256_shuffle_epi8(mins[i / 2], minimums_of[i % 2]), _mm256_set1_epi32(pairs[4 * b + i])));
        }
        const char *pieces = group + 128;
        const int8_t *input = x[b].qs;
        __m256i accumulator = _mm256_setzero_si256();
        for (int g = 0; g < 4; g++) {
            // 16 products per 16-bit lane, at most 15 · 128 each: 30,720, inside int16.
            __m256i low = _mm256_setzero_si256(), high = _mm256_setzero_si256();
            for (int i = 0; i < 8; i++) {
                const __m256i packed = _mm256_loadu_si256((const __m256i *)(pieces + 32 * (8 * g + i)));
                int32_t first, second;
                memcpy(&first, input + 64 * g + 4 * i, 4);
                memcpy(&second, input + 64 * g + 32 + 4 * i, 4);
                low = _mm256_add_epi16(low, _mm256_maddubs_epi16(_mm256_and_si256(packed, low_mask), _mm256_set1_epi32(first)));
                high = _mm256_add_epi16(high, _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(packed, 4), low_mask), _mm256_set1_epi32(second)));
            }
            const int j = 2 * g;  // sub-blocks j (low nibbles) and j + 1 (high)
            accumulator = _mm256_add_epi32(accumulator, _mm256_madd_epi16(low, _mm256_shuffle_epi8(scales[j / 4], scale_of[j % 4])));
            accumulator = _mm256_add_epi32(accumulator, _mm256_madd_epi16(high, _mm256_shuffle_epi8(scales[(j + 1) / 4], scale_of[(j + 1) % 4])));
        }
        sum = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(accumulator), sum);
        minimums = _mm256_fmadd_ps(dmin, _mm256_cvtepi32_ps(minimum_products), minimums);
    }
    _mm256_storeu_ps(y, _mm256_sub_ps(sum, minimums));
}

// Eight unsigned bytes as floats.
__attribute__((target("avx2,fma,f16c"), always_inline)) static inline __m256 bytes8(__m128i bytes) {
    return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(bytes));
}

// The values of `blocks` super-blocks, as dequantize_k_portable computes them (a product, then a difference: no
// fused multiply-add, so the values are the same bits).
__attribute__((target("avx2,fma,f16c"))) static void dequantize_k_avx2(int format, const void *w, long blocks, float *out) {
    for (long b = 0; b < blocks; b++) {
        float *values = out + b * 256;
        if (format == TANDEM_Q4_K) {
            const block_q4_K *block = (const block_q4_K *)w + b;
            uint8_t unpacked[16];
            q4_K_scales_mins(block->scales, unpacked);
            const float d = half_to_float(block->d), dmin = half_to_float(block->dmin);
            for (int g = 0; g < 4; g++) {
                __m256i halves[2];
                q4_K_group(block->qs, g, halves);
                for (int h = 0; h < 2; h++) {
                    const int j = 2 * g + h;
                    const __m256 step = _mm256_set1_ps(d * (float)unpacked[j]), offset = _mm256_set1_ps(dmin * (float)unpacked[8 + j]);
                    uint8_t q[32];
                    _mm256_storeu_si256((__m256i *)q, halves[h]);
                    for (int i = 0; i < 32; i += 8) {
                        const __m256 v = bytes8(_mm_loadl_epi64((const __m128i *)(q + i)));
                        _mm256_storeu_ps(values + 32 * j + i, _mm256_sub_ps(_mm256_mul_ps(step, v), offset));
                    }
                }
            }
        } else if (format == TANDEM_Q6_K) {
            const block_q6_K *block = (const block_q6_K *)w + b;
            const float d = half_to_float(block->d);
            for (int half = 0; half < 2; half++) {
                const uint8_t *ql = block->ql + 64 * half, *qh = block->qh + 32 * half;
                __m256i quarters[4];
                q6_K_quarters(ql, qh, quarters);
                for (int quarter = 0; quarter < 4; quarter++) {
                    uint8_t q[32];
                    _mm256_storeu_si256((__m256i *)q, quarters[quarter]);
                    float *target = values + 128 * half + 32 * quarter;
                    for (int i = 0; i < 32; i += 8) {
                        const __m256 scale = _mm256_set1_ps(d * (float)block->scales[8 * half + 2 * quarter + i / 16]);
                        const __m256 v = _mm256_sub_ps(bytes8(_mm_loadl_epi64((const __m128i *)(q + i))), _mm256_set1_ps(32));
                        _mm256_storeu_ps(target + i, _mm256_mul_ps(scale, v));
                    }
                }
            }
        } else {
            const block_q8_K *block = (const block_q8_K *)w + b;
            const __m256 d = _mm256_set1_ps(block->d);
            for (int i = 0; i < 256; i += 8) {
                _mm256_storeu_ps(values + i, _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(block->qs + i))))));
            }
        }
    }
}
#endif

static void dequantize_k_portable(int format, const void *w, long blocks, float *out) {
    for (long b = 0; b < blocks; b++) {
        float *values = out + b * 256;
        if (format == TANDEM_Q4_K) {
            const block_q4_K *block = (const block_q4_K *)w + b;
            const float d = half_to_float(block->d), dmin = half_to_float(block->dmin);
            for (int j = 0; j < 8; j++) {
                int scale, minimum;
                q4_K_scale_min(j, block->scales, &scale, &minimum);
                const float step = d * (float)scale, offset = dmin * (float)minimum;
                for (int i = j * 32; i < j * 32 + 32; i++) values[i] = step * (float)q4_K_nibble(block, i) - offset;
            }
        } else if (format == TANDEM_Q6_K) {
            const block_q6_K *block = (const block_q6_K *)w + b;
            const float d = half_to_float(block->d);
            for (int i = 0; i < 256; i++) values[i] = d * (float)q6_K_scale(block, i) * (float)q6_K_value(block, i);
        } else {
            const block_q8_K *block = (const block_q8_K *)w + b;
            for (int i = 0; i < 256; i++) values[i] = block->d * (float)block->qs[i];
        }
    }
}

void tandem_dequantize_k(int format, int use_avx2, const void *w, long blocks, float *out) {
#if defined(__x86_64__)
    if (use_avx2) return dequantize_k_avx2(format, w, blocks, out);
#else
    (void)use_avx2;
#endif
    dequantize_k_portable(format, w, blocks, out);
}

// Row j of an interleaved Q4_K or Q6_K weight · Q8_K input row r, by the portable products.
static float row_k_portable(const quant_product *p, long j, long r) {
    const block_q8_K *x = (const block_q8_K *)p->x + r * p->blocks;
    if (j >= p->n / 8 * 8) return dot_k_portable(p->format, p->w + j * p->row_bytes, x, p->blocks);
    float sum = 0;
    char block[sizeof(block_q6_K)];  // the larger of Q4_K and Q6_K
    for (long b = 0; b < p->blocks; b++) {
        tandem_gather_block(p->format, p->w + j / 8 * 8 * p->row_bytes, b, (int)(j % 8), block);
        sum += dot_k_portable(p->format, block, x + b, 1);
    }
    return sum;
}

void tandem_linear_quant_k(int format, int use_avx2, const void *xq, long m, long k, const void *w, long n, long first, long last, float *y) {
    const long blocks = k / 256;
    quant_product p = {format, (const char *)w, n, blocks * tandem_quant_block_bytes(format), blocks, xq, NULL, NULL};
#if defined(__x86_64__)
    if (use_avx2 && format == TANDEM_Q4_K) {
        // Each input super-block's 32-value sums paired, for the minimums.
        const block_q8_K *inputs = (const block_q8_K *)xq;
        int32_t *pairs = malloc(sizeof(int32_t) * (size_t)(4 * m * blocks + 1));
        for (long b = 0; b < m * blocks; b++) {
            for (int i = 0; i < 4; i++) {
                const int low = inputs[b].bsums[4 * i] + inputs[b].bsums[4 * i + 1], high = inputs[b].bsums[4 * i + 2] + inputs[b].bsums[4 * i + 3];
                pairs[4 * b + i] = (int32_t)(((uint32_t)(uint16_t)low) | ((uint32_t)(uint16_t)high << 16));
            }
        }
        p.sums = pairs;
        tandem_quant_rows(&p, group_q4_K_avx2, row_k_portable, m, first, last, y);
        free(pairs);
        return;
    }
    if (use_avx2) return tandem_quant_rows(&p, group_q6_K_avx2, row_k_portable, m, first, last, y);
#endif
    tandem_quant_rows(&p, NULL, row_k_portable, m, first, last, y);
}
