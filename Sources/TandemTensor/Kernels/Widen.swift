import CTandemKernels

/// Vectorised widening of 16-bit floats to fp32, bit-exact with `HalfConversion` (checked on every pattern).
///
/// The kernels load sixteen 16-bit values as eight 32-bit lanes and widen the low halves (the even elements)
/// and the high halves (the odd elements) separately: only same-width integer operations, which the compiler
/// always turns into vector instructions (a 16→32-bit lane conversion may instead become a call).
public enum Widen {
    /// The even elements (low halves) of eight lanes of bfloat16 pairs, as fp32.
    @inline(__always)
    public static func bfloat16Even(_ lanes: SIMD8<UInt32>) -> SIMD8<Float> {
        unsafeBitCast(lanes &<< 16, to: SIMD8<Float>.self)
    }

    /// The odd elements (high halves) of eight lanes of bfloat16 pairs, as fp32.
    @inline(__always)
    public static func bfloat16Odd(_ lanes: SIMD8<UInt32>) -> SIMD8<Float> {
        unsafeBitCast(lanes & 0xFFFF_0000, to: SIMD8<Float>.self)
    }

    /// The even elements of eight lanes of float16 pairs, as fp32.
    @inline(__always)
    public static func float16Even(_ lanes: SIMD8<UInt32>) -> SIMD8<Float> { float16(lanes & 0xFFFF) }

    /// The odd elements of eight lanes of float16 pairs, as fp32.
    @inline(__always)
    public static func float16Odd(_ lanes: SIMD8<UInt32>) -> SIMD8<Float> { float16(lanes &>> 16) }

    /// float16 bits (in the low 16 bits of each lane) as fp32: exponent and mantissa moved into fp32 position
    /// and rebased by 2¹¹² (exact for normal and subnormal values), infinities and NaNs given fp32's all-ones
    /// exponent.
    @inline(__always)
    static func float16(_ bits: SIMD8<UInt32>) -> SIMD8<Float> {
        let magnitude = (bits & 0x7FFF) &<< 13
        var widened = unsafeBitCast(unsafeBitCast(magnitude, to: SIMD8<Float>.self) * 0x1p112, to: SIMD8<UInt32>.self)
        widened.replace(with: magnitude | 0x7F80_0000, where: (bits & 0x7C00) .== 0x7C00)
        return unsafeBitCast(widened | ((bits & 0x8000) &<< 16), to: SIMD8<Float>.self)
    }

    private static let hasAVX2 = tandem_has_avx2() != 0

    /// Widens `count` values of `dtype` (bfloat16 or float16) from `source` into `destination`: with F16C eight
    /// at a time where the CPU has AVX2 (a C kernel), else — or with `portable` — the Swift kernel.
    public static func copy(
        _ dtype: DType, from source: UnsafePointer<UInt16>, count: Int, into destination: UnsafeMutablePointer<Float>, portable: Bool = false
    ) {
        if hasAVX2 && !portable {
            // F16C widens eight at a time; the Swift loop below stores its even and odd lanes one by one.
            let done = tandem_widen16_avx2(dtype == .bfloat16 ? 1 : 0, source, count, destination)
            let widen = HalfConversion.widening(dtype)
            for index in done..<count { destination[index] = widen(source[index]) }
            return
        }
        let vectorEnd = count & ~15
        let raw = UnsafeRawPointer(source)
        let bfloat = dtype == .bfloat16
        for index in stride(from: 0, to: vectorEnd, by: 16) {
            let lanes = raw.loadUnaligned(fromByteOffset: index * 2, as: SIMD8<UInt32>.self)
            let even = bfloat ? bfloat16Even(lanes) : float16Even(lanes)
            let odd = bfloat ? bfloat16Odd(lanes) : float16Odd(lanes)
            let target = destination + index
            for lane in 0..<8 {
                target[2 * lane] = even[lane]
                target[2 * lane + 1] = odd[lane]
            }
        }
        let widen = HalfConversion.widening(dtype)
        for index in vectorEnd..<count { destination[index] = widen(source[index]) }
    }
}
