// Small AVX2 pieces the kernel files share (internal to CTandemKernels; not part of its public header).
#ifndef TANDEM_AVX2_COMMON_H
#define TANDEM_AVX2_COMMON_H

#if defined(__x86_64__)
#include <immintrin.h>

/// The sum of a vector's eight floats.
__attribute__((target("avx2,fma,f16c"))) static inline float tandem_sum8(__m256 v) {
    __m128 half = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    half = _mm_add_ps(half, _mm_movehl_ps(half, half));
    half = _mm_add_ss(half, _mm_movehdup_ps(half));
    return _mm_cvtss_f32(half);
}
#endif

#endif
