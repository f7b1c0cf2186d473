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

    /// `destination[i] = sources[0][i] ⊕ sources[1][i] ⊕ …`, combined in source order, for `count` elements.
    ///
    /// Works through blocks that stay in L1; 16-bit floats accumulate across all sources in fp32 and round
    /// once at the end. `destination` may be one of the sources only if it is `sources[0]`.
    public static func reduce(
        _ op: ReduceOp, dtype: DType, sources: UnsafeBufferPointer<UnsafeRawPointer>,
        into destination: UnsafeMutableRawPointer, count: Int
    ) {
        precondition(!sources.isEmpty, "reduce needs at least one source")
        let block = 2048
        let width = dtype.byteSize
        switch dtype {
        case .float16, .bfloat16:
            let widen = HalfConversion.widening(dtype)
            let narrow = dtype == .float16 ? HalfConversion.float16Bits(from:) : HalfConversion.bfloat16Bits(from:)
            withUnsafeTemporaryAllocation(of: Float.self, capacity: block) { accumulator in
                var start = 0
                while start < count {
                    let length = min(block, count - start)
                    let first = (sources[0] + start * width).assumingMemoryBound(to: UInt16.self)
                    for index in 0..<length { accumulator[index] = widen(first[index]) }
                    for source in sources.dropFirst() {
                        let values = (source + start * width).assumingMemoryBound(to: UInt16.self)
                        accumulateHalves(op, accumulator.baseAddress!, values, length, widen)
                    }
                    let out = (destination + start * width).assumingMemoryBound(to: UInt16.self)
                    for index in 0..<length { out[index] = narrow(accumulator[index]) }
                    start += length
                }
            }
        case .float32, .int8, .int32, .int64:
            var start = 0
            while start < count {
                let length = min(block, count - start)
                let out = destination + start * width
                if sources.count >= 2 {
                    combinePair(op, dtype, out, sources[0] + start * width, sources[1] + start * width, length)
                } else if out != UnsafeMutableRawPointer(mutating: sources[0]) {
                    out.copyMemory(from: sources[0] + start * width, byteCount: length * width)
                }
                for source in sources.dropFirst(2) { combine(op, dtype: dtype, into: out, from: source + start * width, count: length) }
                start += length
            }
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

/// `accumulator[i] = op(accumulator[i], widen(values[i]))` for `reduce`.
@inline(__always)
private func accumulateHalves(
    _ op: ReduceOp, _ accumulator: UnsafeMutablePointer<Float>, _ values: UnsafePointer<UInt16>, _ count: Int,
    _ widen: (UInt16) -> Float
) {
    switch op {
    case .sum, .avg: for index in 0..<count { accumulator[index] += widen(values[index]) }
    case .product: for index in 0..<count { accumulator[index] *= widen(values[index]) }
    case .max: for index in 0..<count { accumulator[index] = Float.maximumOf(accumulator[index], widen(values[index])) }
    case .min: for index in 0..<count { accumulator[index] = Float.minimumOf(accumulator[index], widen(values[index])) }
    }
}

/// `out[i] = a[i] ⊕ b[i]` in one pass, for the full-width types (`reduce`'s first two sources).
@inline(__always)
private func combinePair(
    _ op: ReduceOp, _ dtype: DType, _ out: UnsafeMutableRawPointer, _ a: UnsafeRawPointer, _ b: UnsafeRawPointer, _ count: Int
) {
    if dtype == .float32, op == .sum || op == .avg {
        let result = out.assumingMemoryBound(to: Float.self)
        let left = a.assumingMemoryBound(to: Float.self)
        let right = b.assumingMemoryBound(to: Float.self)
        for index in 0..<count { result[index] = left[index] + right[index] }
        return
    }
    if out != UnsafeMutableRawPointer(mutating: a) { out.copyMemory(from: a, byteCount: count * dtype.byteSize) }
    Reduction.combine(op, dtype: dtype, into: out, from: b, count: count)
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
