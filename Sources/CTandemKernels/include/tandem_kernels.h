// Kernels written with x86 vector intrinsics, compiled for AVX2/FMA/F16C through target attributes and
// chosen at run time (the package builds for baseline x86-64, where Swift's SIMD types become SSE2).
#ifndef TANDEM_KERNELS_H
#define TANDEM_KERNELS_H

#include <stdint.h>

/// Whether this CPU runs the AVX2 kernels (AVX2, FMA and F16C); always 0 off x86-64.
int tandem_has_avx2(void);

/// y[r * n + j] = Σ_i x[r * k + i] · w[j * k + i] for input rows r < m and weight rows first ≤ j < last, with
/// w holding bfloat16 (is_bfloat16 = 1) or float16 bits. Requires tandem_has_avx2().
void tandem_linear16_avx2(
    int is_bfloat16, const float *x, long m, long k, const uint16_t *w, long n, long first, long last, float *y);

#endif
