// IEEE half <-> single conversions the block-format kernels share (internal to CTandemKernels).
#ifndef TANDEM_HALF_H
#define TANDEM_HALF_H

#include <stdint.h>
#include <string.h>

// IEEE half <-> single, round to nearest even (what F16C's _cvtss_sh with rounding mode 0 gives).
static inline uint16_t half_from_float(float value) {
    uint32_t bits;
    memcpy(&bits, &value, sizeof bits);
    uint32_t sign = (bits >> 16) & 0x8000u;
    uint32_t magnitude = bits & 0x7fffffffu;
    if (magnitude >= 0x7f800000u) return (uint16_t)(sign | (magnitude > 0x7f800000u ? 0x7e00u : 0x7c00u));
    if (magnitude >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);  // rounds to ≥ 65520: infinity
    if (magnitude < 0x38800000u) {
        // Subnormal half (or zero): shift the 24-bit significand down, rounding to nearest even.
        if (magnitude < 0x33000000u) return (uint16_t)sign;
        uint32_t exponent = magnitude >> 23;
        uint32_t significand = (magnitude & 0x7fffffu) | 0x800000u;
        uint32_t shift = 126 - exponent;  // 14 + (112 − exponent)
        uint32_t half = significand >> shift;
        uint32_t rest = significand & ((1u << shift) - 1);
        uint32_t midpoint = 1u << (shift - 1);
        if (rest > midpoint || (rest == midpoint && (half & 1))) half += 1;
        return (uint16_t)(sign | half);
    }
    uint32_t rebased = magnitude - 0x38000000u;  // exponent − 112
    uint32_t half = rebased >> 13;
    uint32_t rest = rebased & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (half & 1))) half += 1;
    return (uint16_t)(sign | half);
}

static inline float half_to_float(uint16_t half) {
    uint32_t sign = (uint32_t)(half & 0x8000u) << 16;
    uint32_t exponent = (half >> 10) & 0x1f;
    uint32_t significand = half & 0x3ffu;
    uint32_t bits;
    if (exponent == 0) {
        if (significand == 0) {
            bits = sign;
        } else {
            // Subnormal: normalise.
            exponent = 113;
            while (!(significand & 0x400u)) {
                significand <<= 1;
                exponent -= 1;
            }
            bits = sign | (exponent << 23) | ((significand & 0x3ffu) << 13);
        }
    } else if (exponent == 31) {
        bits = sign | 0x7f800000u | (significand << 13);
    } else {
        bits = sign | ((exponent + 112) << 23) | (significand << 13);
    }
    float value;
    memcpy(&value, &bits, sizeof value);
    return value;
}

#endif
