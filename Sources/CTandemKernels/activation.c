// SiLU(gate) · up eight lanes at a time, with e^x by tandem_exp8 instead of one libm call per element.
#include "tandem_kernels.h"
#include "avx2_common.h"

#if defined(__x86_64__)
#include <immintrin.h>

#define TANDEM_AVX2 __attribute__((target("avx2,fma")))

TANDEM_AVX2 void tandem_silu_mul_avx2(const float *gate_up, long rows, long n, float *out) {
    for (long r = 0; r < rows; r++) {
        const float *gate = gate_up + r * 2 * n, *up = gate + n;
        float *target = out + r * n;
        long i = 0;
        for (; i + 8 <= n; i += 8) {
            __m256 g = _mm256_loadu_ps(gate + i);
            __m256 silu = _mm256_div_ps(g, _mm256_add_ps(_mm256_set1_ps(1.0f), tandem_exp8(_mm256_sub_ps(_mm256_setzero_ps(), g))));
            _mm256_storeu_ps(target + i, _mm256_mul_ps(silu, _mm256_loadu_ps(up + i)));
        }
        if (i < n) {
            float g[8] = {0}, u[8] = {0}, result[8];
            for (long j = i; j < n; j++) { g[j - i] = gate[j]; u[j - i] = up[j]; }
            __m256 gv = _mm256_loadu_ps(g);
            __m256 silu = _mm256_div_ps(gv, _mm256_add_ps(_mm256_set1_ps(1.0f), tandem_exp8(_mm256_sub_ps(_mm256_setzero_ps(), gv))));
            _mm256_storeu_ps(result, _mm256_mul_ps(silu, _mm256_loadu_ps(u)));
            for (long j = i; j < n; j++) target[j] = result[j - i];
        }
    }
}

#else
void tandem_silu_mul_avx2(const float *gate_up, long rows, long n, float *out) { (void)gate_up; (void)rows; (void)n; (void)out; }
#endif
