import CTandemKernels

/// How activations travel between ranks (`TANDEM_ACTIVATION_SYNC`): the tensor-parallel all-reduces of partial
/// sums and the hidden states a pipeline stage sends the next. `float32` sends the values as they are; `bfloat16`
/// rounds them to bfloat16 (half the bytes); `int8` sends blocks of 32 values as one fp16 scale and 32 int8 values
/// (ggml's Q8_0, distributed-llama's Q80: 34 bytes for 128, 3.76× fewer). Sums are always taken in fp32, of the
/// decoded values. The compressed forms trade accuracy for bytes where a link, not the matrix products, bounds a
/// step: links between hosts, not shared memory.
public enum ActivationSync: String, Sendable, Codable, CaseIterable {
    case float32
    case bfloat16
    case int8

    /// Values per block: the unit the encoded bytes are counted in.
    public static let blockValues = 32

    /// Bytes of `blocks` encoded blocks of 32 values.
    public func encodedBytes(blocks: Int) -> Int {
        switch self {
        case .float32: blocks * 128
        case .bfloat16: blocks * 64
        case .int8: blocks * 34
        }
    }

    /// Encodes `count` values from `values` as `blocks` blocks (`count ≤ blocks · 32`; the values past `count` are
    /// zeros) into `target` (`encodedBytes(blocks:)` bytes).
    public func encode(_ values: UnsafePointer<Float>, count: Int, blocks: Int, into target: UnsafeMutableRawPointer) {
        precondition(count >= 0 && count <= blocks * Self.blockValues, "\(count) values do not fit \(blocks) blocks")
        let whole = count / Self.blockValues * Self.blockValues
        switch self {
        case .float32:
            target.copyMemory(from: values, byteCount: count * 4)
            (target + count * 4).initializeMemory(as: UInt8.self, repeating: 0, count: (blocks * Self.blockValues - count) * 4)
        case .bfloat16:
            let halves = target.assumingMemoryBound(to: UInt16.self)
            for index in 0..<count { halves[index] = HalfConversion.bfloat16Bits(from: values[index]) }
            (halves + count).initialize(repeating: 0, count: blocks * Self.blockValues - count)
        case .int8:
            if whole > 0 { tandem_quantize_row(TANDEM_Q8_0, values, whole, target) }
            var rest = whole
            while rest < blocks * Self.blockValues {
                // The block holding the tail, then any all-zero blocks: from a zero-padded copy.
                withUnsafeTemporaryAllocation(of: Float.self, capacity: Self.blockValues) { block in
                    let present = max(0, min(Self.blockValues, count - rest))
                    block.baseAddress!.initialize(repeating: 0, count: Self.blockValues)
                    if present > 0 { block.baseAddress!.update(from: values + rest, count: present) }
                    tandem_quantize_row(TANDEM_Q8_0, block.baseAddress!, Self.blockValues, target + encodedBytes(blocks: rest / Self.blockValues))
                }
                rest += Self.blockValues
            }
        }
    }

    /// Decodes the first `count` values of encoded blocks at `source` into `values`.
    public func decode(_ source: UnsafeRawPointer, count: Int, into values: UnsafeMutablePointer<Float>) {
        switch self {
        case .float32:
            UnsafeMutableRawPointer(values).copyMemory(from: source, byteCount: count * 4)
        case .bfloat16:
            Widen.copy(.bfloat16, from: source.assumingMemoryBound(to: UInt16.self), count: count, into: values)
        case .int8:
            let whole = count / Self.blockValues * Self.blockValues
            if whole > 0 { tandem_dequantize_rows(TANDEM_Q8_0, source, 1, whole, values) }
            guard whole < count else { return }
            withUnsafeTemporaryAllocation(of: Float.self, capacity: Self.blockValues) { block in
                tandem_dequantize_rows(TANDEM_Q8_0, source + encodedBytes(blocks: whole / Self.blockValues), 1, Self.blockValues, block.baseAddress!)
                (values + whole).update(from: block.baseAddress!, count: count - whole)
            }
        }
    }
}
