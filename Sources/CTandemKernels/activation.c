// SiLU(gate) · up eight lanes at a time, with e^x from a degree-6 polynomial after range reduction by ln 2
// (the Cephes expf scheme: about 1 ulp on the reduced range) instead of one libm call per element.
#include "tandem_kernels.h"

#if defined(__x86_64__)
#include <immintrin.h>

#define TANDEM_AVX2 __attribute__((target("avx2,fma")))

TANDEM_AVX2 static inline __m256 exp8(__m256 x) {
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.3365447504f)), _mm256_set1_ps(88.3762626647949f));
    __m256 n = _mm256_floor_ps(_mm256_fmadd_ps(x, _mm256_set1_ps(1.44269504088896341f), _mm256_set1_ps(0.5f)));
    x = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    x = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), x);
    __m256 y = _mm256_set1_ps(1.9875691500e-4f);
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.3981999507e-3f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(8.3334519073e-3f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(4.1665795894e-2f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.6666665459e-1f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(5.0000001201e-1f));
    y = _mm256_fmadd_ps(y, _mm256_mul_ps(x, x), _mm256_add_ps(x, _mm256_set1_ps(1.0f)));
    __m256i exponent = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(y, _mm256_castsi256_ps(exponent));
}

TANDEM_AVX2 void tandem_silu_mul_avx2(const float *gate_up, long rows, long n, float *out) {
    for (long r = 0; r < rows; r++) {
        const float *gate = gate_up + r * 2 * n, *up = gate + n;
        float *target = out + r * n;
        long i = 0;
        for (; i + 8 <= n; i += 8) {
            __m256 g = _mm256_loadu_ps(gate + i);
            __m256 silu = _mm256_div_ps(g, _mm256_add_ps(_mm256_set1_ps(1.0f), exp8(_mm256_sub_ps(_mm256_setzero_ps(), g))));
            _mm256_storeu_ps(target + i, _mm256_mul_ps(silu, _mm256_loadu_ps(up + i)));
        }
        if (i < n) {
            float g[8] = {0}, u[8] = {0}, result[8];
            for (long j = i; j < n; j++) { g[j - i] = gate[j]; u[j - i] = up[j]; }
            __m256 gv = _mm256_loadu_ps(g);
            __m256 silu = _mm256_div_ps(gv, _mm256_add_ps(_mm256_set1_ps(1.0f), exp8(_mm256_sub_ps(_mm256_setzero_ps(), gv))));
            _mm256_storeu_ps(result, _mm256_mul_ps(silu, _mm256_loadu_ps(u)));
            for (long j = i; j < n; j++) target[j] = result[j - i];
        }
    }
}

#else
void tandem_silu_mul_avx2(const float *gate_up, long rows, long n, float *out) { (void)gate_up; (void)rows; (void)n; (void)out; }
#endif
