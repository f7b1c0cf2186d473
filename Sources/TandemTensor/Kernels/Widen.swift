/// Vectorised widening of 16-bit floats to fp32, bit-exact with `HalfConversion` (checked on every pattern).
/// Kernels read bf16/fp16 weights through these, eight at a time.
public enum Widen {
    /// Eight bfloat16s at `source` as fp32: the bits shifted into the high half.
    @inline(__always)
    public static func bfloat16x8(_ source: UnsafePointer<UInt16>) -> SIMD8<Float> {
        let bits = UnsafeRawPointer(source).loadUnaligned(as: SIMD8<UInt16>.self)
        return unsafeBitCast(SIMD8<UInt32>(truncatingIfNeeded: bits) &<< 16, to: SIMD8<Float>.self)
    }

    /// Eight float16s at `source` as fp32: exponent and mantissa moved into fp32 position and rebased by
    /// 2¹¹² (exact for normal and subnormal values), infinities and NaNs given fp32's all-ones exponent.
    @inline(__always)
    public static func float16x8(_ source: UnsafePointer<UInt16>) -> SIMD8<Float> {
        let bits = SIMD8<UInt32>(truncatingIfNeeded: UnsafeRawPointer(source).loadUnaligned(as: SIMD8<UInt16>.self))
        let magnitude = (bits & 0x7FFF) &<< 13
        var widened = unsafeBitCast(unsafeBitCast(magnitude, to: SIMD8<Float>.self) * 0x1p112, to: SIMD8<UInt32>.self)
        widened.replace(with: magnitude | 0x7F80_0000, where: (bits & 0x7C00) .== 0x7C00)
        return unsafeBitCast(widened | ((bits & 0x8000) &<< 16), to: SIMD8<Float>.self)
    }

    /// Widens `count` values of `dtype` (bfloat16 or float16) from `source` into `destination`.
    public static func copy(_ dtype: DType, from source: UnsafePointer<UInt16>, count: Int, into destination: UnsafeMutablePointer<Float>) {
        let vectorEnd = count & ~7
        let raw = UnsafeMutableRawPointer(destination)
        if dtype == .bfloat16 {
            for index in stride(from: 0, to: vectorEnd, by: 8) { raw.storeBytes(of: bfloat16x8(source + index), toByteOffset: index * 4, as: SIMD8<Float>.self) }
        } else {
            for index in stride(from: 0, to: vectorEnd, by: 8) { raw.storeBytes(of: float16x8(source + index), toByteOffset: index * 4, as: SIMD8<Float>.self) }
        }
        let widen = HalfConversion.widening(dtype)
        for index in vectorEnd..<count { destination[index] = widen(source[index]) }
    }
}
