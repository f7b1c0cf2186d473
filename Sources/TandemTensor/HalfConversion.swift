/// Bit-exact conversions between `Float` and the 16-bit float formats, rounding to nearest, ties to even.
///
/// Written with integer arithmetic so that results are identical on every platform, whether or not it has
/// native half-precision instructions.
public enum HalfConversion {
    /// The widening conversion of a 16-bit float `dtype` (`bfloat16` or `float16`).
    @inlinable
    public static func widening(_ dtype: DType) -> (UInt16) -> Float {
        precondition(dtype == .bfloat16 || dtype == .float16, "\(dtype) is not a 16-bit float type")
        if dtype == .bfloat16 { return { float(fromBFloat16: $0) } }
        return { float(fromFloat16: $0) }
    }

    /// Converts a `Float` to the bit pattern of a bfloat16, rounding to nearest even; NaN stays a quiet NaN.
    @inlinable
    public static func bfloat16Bits(from value: Float) -> UInt16 {
        let bits = value.bitPattern
        if (bits & 0x7FFF_FFFF) > 0x7F80_0000 {
            return UInt16(truncatingIfNeeded: (bits >> 16) | 0x0040)
        }
        let roundingBias = UInt32(0x7FFF) + ((bits >> 16) & 1)
        return UInt16(truncatingIfNeeded: (bits &+ roundingBias) >> 16)
    }

    /// Converts the bit pattern of a bfloat16 to a `Float` (exact).
    @inlinable
    public static func float(fromBFloat16 bits: UInt16) -> Float {
        Float(bitPattern: UInt32(bits) << 16)
    }

    /// Converts a `Float` to the bit pattern of an IEEE binary16, rounding to nearest even, with overflow to
    /// infinity, gradual underflow to subnormals and NaN kept a quiet NaN.
    @inlinable
    public static func float16Bits(from value: Float) -> UInt16 {
        let bits = value.bitPattern
        let sign = UInt16(truncatingIfNeeded: (bits >> 16) & 0x8000)
        let magnitude = bits & 0x7FFF_FFFF
        if magnitude > 0x7F80_0000 {
            return sign | 0x7E00 | UInt16(truncatingIfNeeded: (magnitude >> 13) & 0x03FF)
        }
        if magnitude >= 0x477F_F000 {
            // 65520 and above round to infinity (65504 is the largest finite half).
            return sign | 0x7C00
        }
        if magnitude >= 0x3880_0000 {
            // Normal half: rebias the exponent from 127 to 15 and round the 13 dropped mantissa bits.
            let rebased = magnitude &- 0x3800_0000
            let roundingBias = UInt32(0x0FFF) + ((rebased >> 13) & 1)
            let rounded = (rebased &+ roundingBias) >> 13
            return sign | UInt16(truncatingIfNeeded: min(rounded, 0x7C00))
        }
        if magnitude < 0x3300_0000 {
            // Below half of the smallest subnormal (2^-25): rounds to zero.
            return sign
        }
        // Subnormal half: shift the mantissa (with its implicit bit) right and round to nearest even.
        let exponent = Int(magnitude >> 23)
        let mantissa = (magnitude & 0x007F_FFFF) | 0x0080_0000
        let shift = UInt32(126 - exponent)  // 14…24 for exponents 102…112
        let halfway = UInt32(1) << (shift - 1)
        let remainder = mantissa & ((UInt32(1) << shift) - 1)
        var result = mantissa >> shift
        if remainder > halfway || (remainder == halfway && (result & 1) == 1) {
            result += 1
        }
        return sign | UInt16(truncatingIfNeeded: result)
    }

    /// Converts the bit pattern of an IEEE binary16 to a `Float` (exact).
    @inlinable
    public static func float(fromFloat16 bits: UInt16) -> Float {
        let sign = UInt32(bits & 0x8000) << 16
        let exponent = UInt32(bits >> 10) & 0x1F
        let mantissa = UInt32(bits & 0x03FF)
        if exponent == 0x1F {
            return Float(bitPattern: sign | 0x7F80_0000 | (mantissa << 13))
        }
        if exponent != 0 {
            return Float(bitPattern: sign | ((exponent + 112) << 23) | (mantissa << 13))
        }
        if mantissa == 0 {
            return Float(bitPattern: sign)
        }
        // Subnormal: value = mantissa × 2^-24, exact in Float.
        let magnitude = Float(mantissa) * Float(bitPattern: 0x3380_0000)
        return sign == 0 ? magnitude : -magnitude
    }
}
