#include "tandem_kernels.h"
#include "avx2_common.h"

#if defined(__x86_64__)
#include <immintrin.h>

int tandem_has_avx2(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
}

__attribute__((target("avx2,fma,f16c"))) static inline __m256 widen8(int is_bfloat16, const uint16_t *source) {
    __m128i bits = _mm_loadu_si128((const __m128i *)source);
    if (is_bfloat16) return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(bits), 16));
    return _mm256_cvtph_ps(bits);
}

__attribute__((target("avx2,fma,f16c"))) static inline float widen1(int is_bfloat16, uint16_t bits) {
    if (is_bfloat16) {
        uint32_t word = (uint32_t)bits << 16;
        float value;
        __builtin_memcpy(&value, &word, sizeof value);
        return value;
    }
    return _cvtsh_ss(bits);
}

__attribute__((target("avx2,fma,f16c"))) long tandem_widen16_avx2(int is_bfloat16, const uint16_t *source, long n, float *dst) {
    long i = 0;
    if (is_bfloat16) {
        for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, widen8(1, source + i));
        return i;
    }
    const __m256i magnitude = _mm256_set1_epi32(0x7FFF), infinity = _mm256_set1_epi32(0x7C00);
    for (; i + 8 <= n; i += 8) {
        __m128i bits = _mm_loadu_si128((const __m128i *)(source + i));
        __m256 widened = _mm256_cvtph_ps(bits);
        // F16C quiets a signalling NaN; keep the payload as it is, as the scalar conversion does.
        __m256i h = _mm256_cvtepu16_epi32(bits);
        __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(h, magnitude), infinity);
        __m256i exact = _mm256_or_si256(
            _mm256_or_si256(_mm256_slli_epi32(_mm256_and_si256(h, _mm256_set1_epi32(0x8000)), 16), _mm256_set1_epi32(0x7F800000)),
            _mm256_slli_epi32(_mm256_and_si256(h, _mm256_set1_epi32(0x03FF)), 13));
        _mm256_storeu_ps(dst + i, _mm256_blendv_ps(widened, _mm256_castsi256_ps(exact), _mm256_castsi256_ps(nan)));
    }
    return i;
}

// Up to four input rows per pass over a weight row, one accumulator each (four independent FMA chains).
__attribute__((target("avx2,fma,f16c"), always_inline)) static inline void linear16_rows(
    const int is_bfloat16, const float *x, long m, long k, const uint16_t *w, long n, long first, long last, float *y) {
    long vector_end = k & ~7L;
    for (long j = first; j < last; j++) {
        const uint16_t *row = w + j * k;
        for (long r0 = 0; r0 < m; r0 += 4) {
            long rows = m - r0 < 4 ? m - r0 : 4;
            const float *x0 = x + r0 * k;
            const float *x1 = rows > 1 ? x0 + k : x0, *x2 = rows > 2 ? x0 + 2 * k : x0, *x3 = rows > 3 ? x0 + 3 * k : x0;
            __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
            for (long i = 0; i < vector_end; i += 8) {
                __m256 weights = widen8(is_bfloat16, row + i);
                a0 = _mm256_fmadd_ps(weights, _mm256_loadu_ps(x0 + i), a0);
                a1 = _mm256_fmadd_ps(weights, _mm256_loadu_ps(x1 + i), a1);
                a2 = _mm256_fmadd_ps(weights, _mm256_loadu_ps(x2 + i), a2);
                a3 = _mm256_fmadd_ps(weights, _mm256_loadu_ps(x3 + i), a3);
            }
            float sums[4] = {tandem_sum8(a0), tandem_sum8(a1), tandem_sum8(a2), tandem_sum8(a3)};
            const float *inputs[4] = {x0, x1, x2, x3};
            for (long r = 0; r < rows; r++) {
                for (long t = vector_end; t < k; t++) sums[r] += inputs[r][t] * widen1(is_bfloat16, row[t]);
                y[(r0 + r) * n + j] = sums[r];
            }
        }
    }
}

// Batches of more than four rows: blocks of 64 weight rows (≤ 128 KiB at k = 1024, so a block stays in L2 while
// every group of four input rows passes over it, and the weights are read from memory once), each pair of weight
// rows widened once per step and multiplied into four rows' accumulators (eight FMA chains per step).
__attribute__((target("avx2,fma,f16c"), always_inline)) static inline void linear16_tiles(
    const int is_bfloat16, const float *x, long m, long k, const uint16_t *w, long n, long first, long last, float *y) {
    long vector_end = k & ~7L;
    for (long block = first; block < last; block += 64) {
        long block_end = block + 64 < last ? block + 64 : last;
        for (long r0 = 0; r0 < m; r0 += 4) {
            long rows = m - r0 < 4 ? m - r0 : 4;
            const float *x0 = x + r0 * k;
            const float *x1 = rows > 1 ? x0 + k : x0, *x2 = rows > 2 ? x0 + 2 * k : x0, *x3 = rows > 3 ? x0 + 3 * k : x0;
            const float *inputs[4] = {x0, x1, x2, x3};
            long j = block;
            for (; j + 1 < block_end; j += 2) {
                const uint16_t *row0 = w + j * k, *row1 = row0 + k;
                __m256 a00 = _mm256_setzero_ps(), a01 = _mm256_setzero_ps(), a10 = _mm256_setzero_ps(), a11 = _mm256_setzero_ps();
                __m256 a20 = _mm256_setzero_ps(), a21 = _mm256_setzero_ps(), a30 = _mm256_setzero_ps(), a31 = _mm256_setzero_ps();
                for (long i = 0; i < vector_end; i += 8) {
                    __m256 w0 = widen8(is_bfloat16, row0 + i), w1 = widen8(is_bfloat16, row1 + i);
                    __m256 v0 = _mm256_loadu_ps(x0 + i), v1 = _mm256_loadu_ps(x1 + i), v2 = _mm256_loadu_ps(x2 + i), v3 = _mm256_loadu_ps(x3 + i);
                    a00 = _mm256_fmadd_ps(w0, v0, a00);
                    a01 = _mm256_fmadd_ps(w1, v0, a01);
                    a10 = _mm256_fmadd_ps(w0, v1, a10);
                    a11 = _mm256_fmadd_ps(w1, v1, a11);
                    a20 = _mm256_fmadd_ps(w0, v2, a20);
                    a21 = _mm256_fmadd_ps(w1, v2, a21);
                    a30 = _mm256_fmadd_ps(w0, v3, a30);
                    a31 = _mm256_fmadd_ps(w1, v3, a31);
                }
                float sums[4][2] = {{tandem_sum8(a00), tandem_sum8(a01)}, {tandem_sum8(a10), tandem_sum8(a11)}, {tandem_sum8(a20), tandem_sum8(a21)}, {tandem_sum8(a30), tandem_sum8(a31)}};
                for (long r = 0; r < rows; r++) {
                    for (long t = vector_end; t < k; t++) {
                        sums[r][0] += inputs[r][t] * widen1(is_bfloat16, row0[t]);
                        sums[r][1] += inputs[r][t] * widen1(is_bfloat16, row1[t]);
                    }
                    y[(r0 + r) * n + j] = sums[r][0];
                    y[(r0 + r) * n + j + 1] = sums[r][1];
                }
            }
            // An odd last weight row of the block: four rows against it alone.
            if (j < block_end) linear16_rows(is_bfloat16, x0, rows, k, w, n, j, j + 1, y + r0 * n);
        }
    }
}

// Inlined into each caller with a constant is_bfloat16, so the loops carry no format test.
__attribute__((target("avx2,fma,f16c"), always_inline)) static inline void linear16(
    const int is_bfloat16, const float *x, long m, long k, const uint16_t *w, long n, long first, long last, float *y) {
    long vector_end = k & ~31L;
    long wide_end = k & ~63L;
    // Several input rows (batched decode): each weight vector is widened once and multiplied into up to four
    // rows' accumulators, so the pass stays bound by reading the weights rather than by re-widening them.
    if (m > 4) {
        linear16_tiles(is_bfloat16, x, m, k, w, n, first, last, y);
        return;
    }
    if (m > 1) {
        linear16_rows(is_bfloat16, x, m, k, w, n, first, last, y);
        return;
    }
    // One input row (decode): four accumulators, so the FMAs' latency overlaps; 64 values (two cache lines of
    // weights) per step, which measured ~5 % faster decode than 32, then 32, then one at a time.
    for (long j = first; j < last; j++) {
        const uint16_t *row = w + j * k;
        __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
        long i = 0;
        for (; i < wide_end; i += 64) {
            a0 = _mm256_fmadd_ps(widen8(is_bfloat16, row + i), _mm256_loadu_ps(x + i), a0);
            a1 = _mm256_fmadd_ps(widen8(is_bfloat16, row + i + 8), _mm256_loadu_ps(x + i + 8), a1);
            a2 = _mm256_fmadd_ps(widen8(is_bfloat16, row + i + 16), _mm256_loadu_ps(x + i + 16), a2);
            a3 = _mm256_fmadd_ps(widen8(is_bfloat16, row + i + 24), _mm256_loadu_ps(x + i + 24), a3);
            a0 = _mm256_fmadd_ps(widen8(is_bfloat16, row + i + 32), _mm256_loadu_ps(x + i + 32), a0);
            a1 = _mm256_fmadd_ps(widen8(is_bfloat16, row + i + 40), _mm256_loadu_ps(x + i + 40), a1);
            a2 = _mm256_fmadd_ps(widen8(is_bfloat16, row + i + 48), _mm256_loadu_ps(x + i + 48), a2);
            a3 = _mm256_fmadd_ps(widen8(is_bfloat16, row + i + 56), _mm256_loadu_ps(x + i + 56), a3);
        }
        for (; i < vector_end; i += 32) {
            a0 = _mm256_fmadd_ps(widen8(is_bfloat16, row + i), _mm256_loadu_ps(x + i), a0);
            a1 = _mm256_fmadd_ps(widen8(is_bfloat16, row + i + 8), _mm256_loadu_ps(x + i + 8), a1);
            a2 = _mm256_fmadd_ps(widen8(is_bfloat16, row + i + 16), _mm256_loadu_ps(x + i + 16), a2);
            a3 = _mm256_fmadd_ps(widen8(is_bfloat16, row + i + 24), _mm256_loadu_ps(x + i + 24), a3);
        }
        float sum = tandem_sum8(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
        for (long t = vector_end; t < k; t++) sum += x[t] * widen1(is_bfloat16, row[t]);
        y[j] = sum;
    }
}

__attribute__((target("avx2,fma,f16c"))) void tandem_linear16_avx2(
    int is_bfloat16, const float *x, long m, long k, const uint16_t *w, long n, long first, long last, float *y) {
    if (is_bfloat16) {
        linear16(1, x, m, k, w, n, first, last, y);
    } else {
        linear16(0, x, m, k, w, n, first, last, y);
    }
}

#else

int tandem_has_avx2(void) { return 0; }

long tandem_widen16_avx2(int is_bfloat16, const uint16_t *source, long n, float *dst) {
    (void)is_bfloat16; (void)source; (void)n; (void)dst;
    __builtin_trap();
}

void tandem_linear16_avx2(
    int is_bfloat16, const float *x, long m, long k, const uint16_t *w, long n, long first, long last, float *y) {
    (void)is_bfloat16; (void)x; (void)m; (void)k; (void)w; (void)n; (void)first; (void)last; (void)y;
    __builtin_trap();
}

#endif
