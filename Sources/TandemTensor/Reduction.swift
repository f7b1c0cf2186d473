/// The element-wise reductions the collectives apply.
public enum ReduceOp: UInt8, Sendable, CaseIterable, Codable, CustomStringConvertible {
    case sum = 1
    case avg = 2
    case max = 3
    case min = 4
    case product = 5

    /// The lower-case name (`sum`, `avg` …).
    public var description: String {
        switch self {
        case .sum: "sum"
        case .avg: "avg"
        case .max: "max"
        case .min: "min"
        case .product: "product"
        }
    }
}

/// Element-wise reduction kernels over raw buffers.
///
/// Half-precision types are widened to `Float`, combined, and rounded back to nearest even, so each step
/// accumulates in fp32. Integer sums and products wrap on overflow, as in PyTorch.
public enum Reduction {
    /// `destination[i] = destination[i] ⊕ source[i]` for `count` elements of `dtype`.
    ///
    /// `avg` combines like `sum`; the caller divides once at the end with `scale(_:by:)`.
    public static func combine(
        _ op: ReduceOp, dtype: DType,
        into destination: UnsafeMutableRawPointer, from source: UnsafeRawPointer, count: Int
    ) {
        switch op {
        case .sum, .avg: apply(dtype, destination, source, count, Float.add, Int64.addWrapping)
        case .product: apply(dtype, destination, source, count, Float.multiply, Int64.multiplyWrapping)
        case .max: apply(dtype, destination, source, count, Float.maximumOf, Int64.maximumOf)
        case .min: apply(dtype, destination, source, count, Float.minimumOf, Int64.minimumOf)
        }
    }

    /// Divides every element by `divisor` (used to finish `avg`); floating-point types only.
    public static func scale(
        _ buffer: UnsafeMutableRawPointer, dtype: DType, count: Int, dividingBy divisor: Int
    ) {
        precondition(dtype.isFloatingPoint, "avg is defined for floating-point dtypes only")
        let factor = Float(divisor)
        switch dtype {
        case .float32:
            let values = buffer.assumingMemoryBound(to: Float.self)
            for index in 0..<count { values[index] /= factor }
        case .float16:
            transformHalves(buffer, count, HalfConversion.float(fromFloat16:), HalfConversion.float16Bits(from:)) { $0 / factor }
        case .bfloat16:
            transformHalves(buffer, count, HalfConversion.float(fromBFloat16:), HalfConversion.bfloat16Bits(from:)) { $0 / factor }
        case .int8, .int32, .int64:
            preconditionFailure("unreachable: integer avg rejected above")
        }
    }

    @inline(__always)
    private static func apply(
        _ dtype: DType, _ destination: UnsafeMutableRawPointer, _ source: UnsafeRawPointer, _ count: Int,
        _ floatOp: (Float, Float) -> Float, _ integerOp: (Int64, Int64) -> Int64
    ) {
        switch dtype {
        case .float32:
            let out = destination.assumingMemoryBound(to: Float.self)
            let input = source.assumingMemoryBound(to: Float.self)
            for index in 0..<count { out[index] = floatOp(out[index], input[index]) }
        case .float16:
            combineHalves(destination, source, count, HalfConversion.float(fromFloat16:), HalfConversion.float16Bits(from:), floatOp)
        case .bfloat16:
            combineHalves(destination, source, count, HalfConversion.float(fromBFloat16:), HalfConversion.bfloat16Bits(from:), floatOp)
        case .int8:
            let out = destination.assumingMemoryBound(to: Int8.self)
            let input = source.assumingMemoryBound(to: Int8.self)
            for index in 0..<count { out[index] = Int8(truncatingIfNeeded: integerOp(Int64(out[index]), Int64(input[index]))) }
        case .int32:
            let out = destination.assumingMemoryBound(to: Int32.self)
            let input = source.assumingMemoryBound(to: Int32.self)
            for index in 0..<count { out[index] = Int32(truncatingIfNeeded: integerOp(Int64(out[index]), Int64(input[index]))) }
        case .int64:
            let out = destination.assumingMemoryBound(to: Int64.self)
            let input = source.assumingMemoryBound(to: Int64.self)
            for index in 0..<count { out[index] = integerOp(out[index], input[index]) }
        }
    }
}

/// `out[i] = narrow(op(widen(out[i]), widen(input[i])))` over 16-bit floats: one rounding per step, from fp32.
@inline(__always)
private func combineHalves(
    _ destination: UnsafeMutableRawPointer, _ source: UnsafeRawPointer, _ count: Int,
    _ widen: (UInt16) -> Float, _ narrow: (Float) -> UInt16, _ op: (Float, Float) -> Float
) {
    let out = destination.assumingMemoryBound(to: UInt16.self)
    let input = source.assumingMemoryBound(to: UInt16.self)
    for index in 0..<count { out[index] = narrow(op(widen(out[index]), widen(input[index]))) }
}

/// `values[i] = narrow(transform(widen(values[i])))` over 16-bit floats.
@inline(__always)
private func transformHalves(
    _ buffer: UnsafeMutableRawPointer, _ count: Int, _ widen: (UInt16) -> Float, _ narrow: (Float) -> UInt16,
    _ transform: (Float) -> Float
) {
    let values = buffer.assumingMemoryBound(to: UInt16.self)
    for index in 0..<count { values[index] = narrow(transform(widen(values[index]))) }
}

extension Float {
    @inline(__always) fileprivate static func add(_ a: Float, _ b: Float) -> Float { a + b }
    @inline(__always) fileprivate static func multiply(_ a: Float, _ b: Float) -> Float { a * b }
    // NaN propagates, as in torch.maximum / torch.minimum.
    @inline(__always) fileprivate static func maximumOf(_ a: Float, _ b: Float) -> Float { a.isNaN || b.isNaN ? .nan : Swift.max(a, b) }
    @inline(__always) fileprivate static func minimumOf(_ a: Float, _ b: Float) -> Float { a.isNaN || b.isNaN ? .nan : Swift.min(a, b) }
}

extension Int64 {
    @inline(__always) fileprivate static func addWrapping(_ a: Int64, _ b: Int64) -> Int64 { a &+ b }
    @inline(__always) fileprivate static func multiplyWrapping(_ a: Int64, _ b: Int64) -> Int64 { a &* b }
    @inline(__always) fileprivate static func maximumOf(_ a: Int64, _ b: Int64) -> Int64 { Swift.max(a, b) }
    @inline(__always) fileprivate static func minimumOf(_ a: Int64, _ b: Int64) -> Int64 { Swift.min(a, b) }
}
