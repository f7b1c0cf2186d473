// Float rows quantized to ggml's k-quant super-blocks, choosing scales as ggml's reference quantizers do
// (quantize_row_q4_K_ref, quantize_row_q6_K_ref — what llama-quantize writes without an importance matrix), so a
// checkpoint quantized on load holds the bytes llama.cpp would have written:
//   Q4_K: per 32-value sub-block, a scale and minimum chosen by a weighted least-squares search (weights
//         rms(sub-block) + |x|; 21 candidate scales around 15 / (max − min)), then the eight scales and eight
//         minimums quantized to 6 bits against the super-block's fp16 d and dmin, and the values requantized
//         against those rounded scales.
//   Q6_K: per 16-value sub-block, the signed scale that maximises Σ x²·x·l over 19 candidates around −32 / x_max,
//         the sixteen scales quantized to int8 against the super-block's fp16 d, values requantized likewise.
// The arithmetic is float32, evaluated in ggml's source order and never contracted into fused multiply-adds, so
// the bytes are reproducible (tools/reference/quant_reference.py computes them independently in numpy).
#pragma STDC FP_CONTRACT OFF

#include "tandem_kernels.h"
#include "half.h"

#include <math.h>
#include <string.h>

#include "quant_k.h"

// Round to nearest, ties to even, as ggml's nearest_int: adding 1.5 · 2^23 leaves the rounded integer in the low
// mantissa bits (exact for |value| < 2^22; larger values and NaN are clamped first). Inline, unlike nearbyintf.
static inline int nearest(float value) {
    if (!(value > -4194303.0f)) value = -4194303.0f;  // NaN too
    if (value > 4194303.0f) value = 4194303.0f;
    const float shifted = value + 12582912.0f;
    int32_t bits;
    memcpy(&bits, &shifted, sizeof bits);
    return (bits & 0x007fffff) - 0x00400000;
}

static inline int clamp(int value, int low, int high) { return value < low ? low : (value > high ? high : value); }

// Sub-block `x` (n values, weights w) as integers 0…nmax with value ≈ scale · l − minimum: the grid from its range,
// then nsteps + 1 wider or narrower grids, each refitted by weighted least squares for scale and offset, keeping
// the one of least weighted squared error. Returns the scale; *minimum is the (non-negative) amount subtracted.
static float fit_scale_min(int n, int nmax, const float *x, const float *w, uint8_t *levels, float *minimum) {
    enum { steps = 20 };
    const float rmin = -1.0f, rdelta = 0.1f;
    float low = x[0], high = x[0], sum_w = w[0], sum_x = w[0] * x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < low) low = x[i];
        if (x[i] > high) high = x[i];
        sum_w += w[i];
        sum_x += w[i] * x[i];
    }
    if (low > 0) low = 0;
    if (high == low) {
        memset(levels, 0, (size_t)n);
        *minimum = -low;
        return 0;
    }
    float iscale = nmax / (high - low), scale = 1 / iscale, best_error = 0;
    for (int i = 0; i < n; i++) {
        levels[i] = (uint8_t)clamp(nearest(iscale * (x[i] - low)), 0, nmax);
        const float diff = scale * levels[i] + low - x[i];
        best_error += w[i] * (diff * diff);
    }
    uint8_t trial[32];
    for (int step = 0; step <= steps; step++) {
        iscale = (rmin + rdelta * step + nmax) / (high - low);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; i++) {
            const int l = clamp(nearest(iscale * (x[i] - low)), 0, nmax);
            trial[i] = (uint8_t)l;
            sum_l += w[i] * l;
            sum_l2 += w[i] * l * l;
            sum_xl += w[i] * l * x[i];
        }
        const float det = sum_w * sum_l2 - sum_l * sum_l;
        if (!(det > 0)) continue;
        float this_scale = (sum_w * sum_xl - sum_x * sum_l) / det;
        float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / det;
        if (this_min > 0) {
            this_min = 0;
            this_scale = sum_xl / sum_l2;
        }
        float error = 0;
        for (int i = 0; i < n; i++) {
            const float diff = this_scale * trial[i] + this_min - x[i];
            error += w[i] * (diff * diff);
        }
        if (error < best_error) {
            memcpy(levels, trial, (size_t)n);
            best_error = error;
            scale = this_scale;
            low = this_min;
        }
    }
    *minimum = -low;
    return scale;
}

// Sub-block `x` (n values) as signed integers −nmax…nmax−1 (stored offset by nmax) with value ≈ scale · l, weighting
// each value by x²: the grid putting the largest magnitude at −nmax, refitted, then 18 nearby grids whose refit
// scores higher. Returns the (signed) scale, 0 for an all-zero sub-block.
static float fit_scale(int n, int nmax, const float *x, int8_t *levels) {
    float max = 0, amax = 0;
    for (int i = 0; i < n; i++) {
        const float ax = fabsf(x[i]);
        if (ax > amax) {
            amax = ax;
            max = x[i];
        }
    }
    if (amax < 1e-15f) {
        memset(levels, 0, (size_t)n);
        return 0;
    }
    float iscale = -nmax / max, sum_lx = 0, sum_l2 = 0;
    for (int i = 0; i < n; i++) {
        const int l = clamp(nearest(iscale * x[i]), -nmax, nmax - 1);
        levels[i] = (int8_t)(l + nmax);
        const float w = x[i] * x[i];
        sum_lx += w * x[i] * l;
        sum_l2 += w * l * l;
    }
    float scale = sum_l2 != 0 ? sum_lx / sum_l2 : 0.0f;
    float best = scale * sum_lx;
    for (int step = -9; step <= 9; step++) {
        if (step == 0) continue;
        iscale = -(nmax + 0.1f * step) / max;
        sum_lx = sum_l2 = 0;
        for (int i = 0; i < n; i++) {
            const int l = clamp(nearest(iscale * x[i]), -nmax, nmax - 1);
            const float w = x[i] * x[i];
            sum_lx += w * x[i] * l;
            sum_l2 += w * l * l;
        }
        if (sum_l2 > 0 && sum_lx * sum_lx > best * sum_l2) {
            for (int i = 0; i < n; i++) levels[i] = (int8_t)(nmax + clamp(nearest(iscale * x[i]), -nmax, nmax - 1));
            scale = sum_lx / sum_l2;
            best = scale * sum_lx;
        }
    }
    return scale;
}

void tandem_quantize_row_q4_K(const float *x, long k, void *out) {
    for (long b = 0; b < k / 256; b++, x += 256) {
        block_q4_K *block = (block_q4_K *)out + b;
        uint8_t levels[256];
        float scales[8], minimums[8], weights[32], max_scale = 0, max_minimum = 0;
        for (int j = 0; j < 8; j++) {
            const float *values = x + 32 * j;
            float sum_x2 = 0;
            for (int i = 0; i < 32; i++) sum_x2 += values[i] * values[i];
            const float rms = sqrtf(sum_x2 / 32);
            for (int i = 0; i < 32; i++) weights[i] = rms + fabsf(values[i]);
            scales[j] = fit_scale_min(32, 15, values, weights, levels + 32 * j, &minimums[j]);
            if (scales[j] > max_scale) max_scale = scales[j];
            if (minimums[j] > max_minimum) max_minimum = minimums[j];
        }
        const float inverse_scale = max_scale > 0 ? 63.0f / max_scale : 0.0f;
        const float inverse_minimum = max_minimum > 0 ? 63.0f / max_minimum : 0.0f;
        uint8_t sc[8], m[8];
        for (int j = 0; j < 8; j++) {
            // As ggml stores them: the integer truncated to a byte, then capped at 63.
            const uint8_t ls = (uint8_t)nearest(inverse_scale * scales[j]), lm = (uint8_t)nearest(inverse_minimum * minimums[j]);
            sc[j] = ls < 63 ? ls : 63;
            m[j] = lm < 63 ? lm : 63;
        }
        for (int j = 0; j < 4; j++) {
            block->scales[j] = (uint8_t)(sc[j] | ((sc[j + 4] >> 4) << 6));
            block->scales[j + 4] = (uint8_t)(m[j] | ((m[j + 4] >> 4) << 6));
            block->scales[j + 8] = (uint8_t)((sc[j + 4] & 15) | ((m[j + 4] & 15) << 4));
        }
        block->d = half_from_float(max_scale / 63.0f);
        block->dmin = half_from_float(max_minimum / 63.0f);
        const float d = half_to_float(block->d), dmin = half_to_float(block->dmin);
        for (int j = 0; j < 8; j++) {
            const float scale = d * sc[j];
            if (scale == 0) continue;  // keeps the fitted levels, as ggml does
            const float offset = dmin * m[j];
            for (int i = 0; i < 32; i++) levels[32 * j + i] = (uint8_t)clamp(nearest((x[32 * j + i] + offset) / scale), 0, 15);
        }
        for (int group = 0; group < 4; group++) {
            for (int i = 0; i < 32; i++) block->qs[32 * group + i] = (uint8_t)(levels[64 * group + i] | (levels[64 * group + 32 + i] << 4));
        }
    }
}

void tandem_quantize_row_q6_K(const float *x, long k, void *out) {
    for (long b = 0; b < k / 256; b++, x += 256) {
        block_q6_K *block = (block_q6_K *)out + b;
        int8_t levels[256];
        float scales[16], max_scale = 0, max_abs_scale = 0;
        for (int j = 0; j < 16; j++) {
            scales[j] = fit_scale(16, 32, x + 16 * j, levels + 16 * j);
            if (fabsf(scales[j]) > max_abs_scale) {
                max_abs_scale = fabsf(scales[j]);
                max_scale = scales[j];
            }
        }
        memset(block, 0, sizeof *block);
        if (max_abs_scale < 1e-15f) continue;
        const float iscale = -128.0f / max_scale;
        block->d = half_from_float(1 / iscale);
        for (int j = 0; j < 16; j++) {
            const int s = nearest(iscale * scales[j]);
            block->scales[j] = (int8_t)(s < 127 ? s : 127);
        }
        const float d = half_to_float(block->d);
        for (int j = 0; j < 16; j++) {
            const float scale = d * block->scales[j];
            if (scale == 0) continue;  // keeps the fitted levels, as ggml does
            for (int i = 0; i < 16; i++) levels[16 * j + i] = (int8_t)(clamp(nearest(x[16 * j + i] / scale), -32, 31) + 32);
        }
        for (int half = 0; half < 2; half++) {
            const int8_t *l = levels + 128 * half;
            uint8_t *ql = block->ql + 64 * half, *qh = block->qh + 32 * half;
            for (int i = 0; i < 32; i++) {
                ql[i] = (uint8_t)((l[i] & 15) | ((l[i + 64] & 15) << 4));
                ql[i + 32] = (uint8_t)((l[i + 32] & 15) | ((l[i + 96] & 15) << 4));
                qh[i] = (uint8_t)((l[i] >> 4) | ((l[i + 32] >> 4) << 2) | ((l[i + 64] >> 4) << 4) | ((l[i + 96] >> 4) << 6));
            }
        }
    }
}
