import CTandemKernels
import Dispatch

/// What a model's linear layers multiply in.
public enum ComputePrecision: String, Sendable, CaseIterable, Codable {
    /// Activations in fp32; 16-bit weights widened to fp32 (results match an fp32 reference to ~1e-6).
    case float32
    /// Activations rounded to bfloat16 at each linear layer's input and multiplied with bfloat16 weights, fp32
    /// sums (AVX-512 BF16), as vLLM computes a bf16 checkpoint: about 2–3× the fp32 rate of the matrix
    /// products, logits within ~3e-3 (of the largest) of fp32.
    case bfloat16

    /// Whether this CPU runs `bfloat16` (AVX-512 BF16).
    public static let bfloat16Available = tandem_has_avx512_bf16() != 0
}

/// A linear layer's weight `[out_features, in_features]` in the form its precision multiplies: the checkpoint
/// tensor (fp32 compute), or bfloat16 packed for the BF16 kernel — made once at load, and the only copy kept.
public final class LinearWeight: @unchecked Sendable {
    /// Output features (rows of the weight).
    public let outputSize: Int
    /// Input features (columns of the weight).
    public let inputSize: Int
    /// Bytes held.
    public let byteCount: Int
    /// Threads the kernels split this layer's product over (the rank's share of the cores).
    public let threads: Int
    private let dense: Tensor?
    private let packed: UnsafeMutablePointer<UInt16>?

    /// `weight` for `precision`, multiplied on `threads` threads; `.bfloat16` rounds fp32/fp16 weights to
    /// bfloat16 and packs them.
    ///
    /// - Precondition: `.bfloat16` only where `ComputePrecision.bfloat16Available`.
    public init(_ weight: Tensor, precision: ComputePrecision, threads: Int = 1) {
        precondition(weight.rank == 2 && weight.dtype.isFloatingPoint, "a linear weight is a 2-D float tensor")
        self.threads = max(threads, 1)
        (outputSize, inputSize) = (weight.shape[0], weight.shape[1])
        switch precision {
        case .float32:
            dense = weight
            packed = nil
            byteCount = weight.byteCount
        case .bfloat16:
            precondition(ComputePrecision.bfloat16Available, "bfloat16 compute needs AVX-512 BF16")
            let source = weight.dtype == .bfloat16 ? weight : Self.rounded(weight)
            let elements = tandem_packed_bf16_elements(outputSize, inputSize)
            let buffer = UnsafeMutablePointer<UInt16>.allocate(capacity: elements)
            tandem_pack_bf16(source.baseAddress.assumingMemoryBound(to: UInt16.self), outputSize, inputSize, buffer)
            dense = nil
            packed = buffer
            byteCount = elements * 2
        }
    }

    deinit { packed?.deallocate() }

    /// An fp32 or fp16 weight as bfloat16, a row at a time (widened as kernels read it, rounded to nearest even).
    private static func rounded(_ weight: Tensor) -> Tensor {
        let (rows, columns) = (weight.shape[0], weight.shape[1])
        let result = Tensor(zeros: weight.shape, dtype: .bfloat16)
        let target = result.baseAddress.assumingMemoryBound(to: UInt16.self)
        withUnsafeTemporaryAllocation(of: Float.self, capacity: max(columns, 1)) { row in
            for index in 0..<rows {
                weight.copyFloats(from: index * columns, count: columns, into: row.baseAddress!)
                tandem_round_bf16(row.baseAddress!, 1, columns, columns, target + index * columns)
            }
        }
        return result
    }

    /// `output[m, outputSize] = input[m, inputSize] · weightᵀ` (fp32 input and output), on `threads` threads.
    public func apply(_ input: Tensor, into output: Tensor) {
        guard let packed else { return Matmul.linear(input, weight: dense!, into: output, threads: threads) }
        precondition(input.dtype == .float32 && output.dtype == .float32, "linear computes on float32 activations")
        let m = input.shape[0]
        precondition(input.shape == [m, inputSize] && output.shape == [m, outputSize], "shapes \(input.shape) · [\(outputSize), \(inputSize)]ᵀ → \(output.shape) do not fit")
        if m == 0 || outputSize == 0 { return }
        let stride = (inputSize + 1) & ~1
        withUnsafeTemporaryAllocation(of: UInt16.self, capacity: m * stride) { buffer in
            let rounded = buffer.baseAddress!
            tandem_round_bf16(input.baseAddress.assumingMemoryBound(to: Float.self), m, inputSize, stride, rounded)
            let blocks = (outputSize + 15) / 16
            let parts = min(threads, max(blocks / 12, 1))
            let (x, y, n, k) = (UncheckedSendable(rounded), UncheckedSendable(output.baseAddress.assumingMemoryBound(to: Float.self)), outputSize, inputSize)
            let weights = UncheckedSendable(packed)
            DispatchQueue.concurrentPerform(iterations: parts) { part in
                tandem_gemm_packed_bf16(x.value, stride, m, k, weights.value, n, blocks * part / parts, blocks * (part + 1) / parts, y.value)
            }
        }
    }
}
