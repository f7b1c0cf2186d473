// Decode attention: one query position's heads against a paged KV cache, the keys and values read in place (no
// widened copy) a block at a time, all kv heads of a block together (one contiguous stretch of the cache), a tile of
// positions at a time with an online softmax.
#include "tandem_kernels.h"
#include "avx2_common.h"

#include <math.h>

#if defined(__x86_64__)

// Eight stored values from `row` (element `at`) as fp32: bfloat16 by a shift, float16 by F16C (both exact).
__attribute__((target("avx2,fma,f16c"), always_inline)) static inline __m256 load8(int storage, const void *row, long at) {
    switch (storage) {
    case TANDEM_KV_BFLOAT16:
        return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)((const uint16_t *)row + at))), 16));
    case TANDEM_KV_FLOAT16:
        return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)row + at)));
    default:
        return _mm256_loadu_ps((const float *)row + at);
    }
}

// Where the cached rows lie: position p's row of kv head h at element
// ((table[p / block_size] · kv_heads + h) · block_size + p % block_size) · d, keys and values alike.
typedef struct {
    int storage;
    const char *keys, *values;
    const int32_t *table;
    long block_size, kv_heads, d, bytes;
} paged_cache;

// Byte offset of kv head 0's row of position p, and how many positions from p on lie in the same block (up to `limit`).
static inline long run_at(const paged_cache *c, long p, long limit, long *run) {
    const long block = c->table[p / c->block_size], offset = p % c->block_size;
    *run = c->block_size - offset < limit - p ? c->block_size - offset : limit - p;
    return ((block * c->kv_heads) * c->block_size + offset) * c->d * c->bytes;
}

// scores[h · tile + i] = q_h · k_i · scale for `heads` (1–8) query heads and the `run` consecutive rows from `key`.
__attribute__((target("avx2,fma,f16c"), always_inline)) static inline void run_scores(
    const paged_cache *c, const float *queries, const long heads, const char *key, long run, float scale, float *scores, long tile) {
    const long d = c->d;
    for (long i = 0; i < run; i++, key += d * c->bytes) {
        __m256 sums[8];
        for (long h = 0; h < heads; h++) sums[h] = _mm256_setzero_ps();
        for (long e = 0; e < d; e += 8) {
            const __m256 k = load8(c->storage, key, e);
            for (long h = 0; h < heads; h++) sums[h] = _mm256_fmadd_ps(_mm256_loadu_ps(queries + h * d + e), k, sums[h]);
        }
        for (long h = 0; h < heads; h++) scores[h * tile + i] = tandem_sum8(sums[h]) * scale;
    }
}

// output[h] += Σ_i weights[h · tile + i] · v_i for `heads` (1–8) query heads and the `run` consecutive rows from
// `value`: 8 columns at a time, their sums held in registers while the run's rows (in L1 after the first columns)
// pass.
__attribute__((target("avx2,fma,f16c"), always_inline)) static inline void run_values(
    const paged_cache *c, const long heads, const char *value, long run, const float *weights, long tile, float *output) {
    const long d = c->d, row_bytes = d * c->bytes;
    for (long e = 0; e < d; e += 8) {
        __m256 sums[8];
        for (long h = 0; h < heads; h++) sums[h] = _mm256_loadu_ps(output + h * d + e);
        const char *row = value;
        for (long i = 0; i < run; i++, row += row_bytes) {
            const __m256 v = load8(c->storage, row, e);
            for (long h = 0; h < heads; h++) sums[h] = _mm256_fmadd_ps(_mm256_broadcast_ss(weights + h * tile + i), v, sums[h]);
        }
        for (long h = 0; h < heads; h++) _mm256_storeu_ps(output + h * d + e, sums[h]);
    }
}

// The two per-run products compiled for each head count, so that the per-head vectors stay in registers.
#define TANDEM_HEAD_COUNTS(X) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8)
#define TANDEM_SCORES_CASE(n) case n: run_scores(c, queries, n, key, run, scale, scores, tile); break;
#define TANDEM_VALUES_CASE(n) case n: run_values(c, n, value, run, weights, tile, output); break;

__attribute__((target("avx2,fma,f16c"))) static void scores_for(
    const paged_cache *c, const float *queries, long heads, const char *key, long run, float scale, float *scores, long tile) {
    switch (heads) { TANDEM_HEAD_COUNTS(TANDEM_SCORES_CASE) }
}

__attribute__((target("avx2,fma,f16c"))) static void values_for(
    const paged_cache *c, long heads, const char *value, long run, const float *weights, long tile, float *output) {
    switch (heads) { TANDEM_HEAD_COUNTS(TANDEM_VALUES_CASE) }
}

// One head's scores of a tile (`width` of them) into their weights e^(s − m) against the running maximum m, which
// moves to the tile's largest score; the sum so far and the output row so far rescaled by e^(m_old − m).
__attribute__((target("avx2,fma,f16c"))) static void softmax_tile(float *scores, long width, float *maximum, float *sum, float *output, long d) {
    const long vectors = width / 8 * 8;
    __m256 most = _mm256_set1_ps(*maximum);
    for (long i = 0; i < vectors; i += 8) most = _mm256_max_ps(most, _mm256_loadu_ps(scores + i));
    __m128 half = _mm_max_ps(_mm256_castps256_ps128(most), _mm256_extractf128_ps(most, 1));
    half = _mm_max_ps(half, _mm_movehl_ps(half, half));
    float largest = _mm_cvtss_f32(_mm_max_ss(half, _mm_movehdup_ps(half)));
    for (long i = vectors; i < width; i++) largest = scores[i] > largest ? scores[i] : largest;
    const float correction = expf(*maximum - largest);
    const __m256 shift = _mm256_set1_ps(largest);
    __m256 total = _mm256_setzero_ps();
    for (long i = 0; i < vectors; i += 8) {
        const __m256 weights = tandem_exp8(_mm256_sub_ps(_mm256_loadu_ps(scores + i), shift));
        _mm256_storeu_ps(scores + i, weights);
        total = _mm256_add_ps(total, weights);
    }
    float added = tandem_sum8(total);
    for (long i = vectors; i < width; i++) {
        scores[i] = expf(scores[i] - largest);
        added += scores[i];
    }
    if (correction != 1) {
        const __m256 factor = _mm256_set1_ps(correction);
        for (long i = 0; i < d; i += 8) _mm256_storeu_ps(output + i, _mm256_mul_ps(factor, _mm256_loadu_ps(output + i)));
    }
    *sum = *sum * correction + added;
    *maximum = largest;
}

__attribute__((target("avx2,fma,f16c"))) int tandem_attend_one_avx2(
    int storage, const float *queries, long kv_heads, long group, long d, const void *key_cache, const void *value_cache,
    const int32_t *block_table, long block_size, long first, long last, float scale, long tile, float *scratch, float *output) {
    if (d % 8 != 0 || first >= last || tile <= 0) return 0;
    const paged_cache c = {storage, key_cache, value_cache, block_table, block_size, kv_heads, d, storage == TANDEM_KV_FLOAT32 ? 4 : 2};
    const long heads = kv_heads * group, head_bytes = block_size * d * c.bytes;
    float *scores = scratch, *maxima = scratch + heads * tile, *sums = maxima + heads;
    for (long i = 0; i < heads * d; i++) output[i] = 0;
    for (long h = 0; h < heads; h++) {
        maxima[h] = -INFINITY;
        sums[h] = 0;
    }
    // A tile of positions at a time; within it a block's run at a time, all kv heads of the run (one contiguous
    // stretch of the cache) before the next.
    for (long t0 = first; t0 < last; t0 += tile) {
        const long t1 = last - t0 < tile ? last : t0 + tile, width = t1 - t0;
        for (long p = t0, run; p < t1; p += run) {
            const char *keys = c.keys + run_at(&c, p, t1, &run);
            for (long kv = 0; kv < kv_heads; kv++) {
                for (long h0 = 0; h0 < group; h0 += 8) {
                    const long first_head = kv * group + h0;
                    scores_for(&c, queries + first_head * d, group - h0 < 8 ? group - h0 : 8, keys + kv * head_bytes, run, scale,
                               scores + first_head * tile + (p - t0), tile);
                }
            }
        }
        // The online softmax: each head's running maximum, the sums and outputs so far rescaled to it.
        for (long h = 0; h < heads; h++) softmax_tile(scores + h * tile, width, maxima + h, sums + h, output + h * d, d);
        for (long p = t0, run; p < t1; p += run) {
            const char *values = c.values + run_at(&c, p, t1, &run);
            for (long kv = 0; kv < kv_heads; kv++) {
                for (long h0 = 0; h0 < group; h0 += 8) {
                    const long first_head = kv * group + h0;
                    values_for(&c, group - h0 < 8 ? group - h0 : 8, values + kv * head_bytes, run, scores + first_head * tile + (p - t0), tile,
                               output + first_head * d);
                }
            }
        }
    }
    for (long h = 0; h < heads; h++) {
        const float inverse = 1 / sums[h];
        for (long i = 0; i < d; i++) output[h * d + i] *= inverse;
    }
    return 1;
}

#else

int tandem_attend_one_avx2(int storage, const float *queries, long kv_heads, long group, long d, const void *key_cache,
                           const void *value_cache, const int32_t *block_table, long block_size, long first, long last, float scale,
                           long tile, float *scratch, float *output) {
    return 0;
}

#endif
