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
/// tensor (fp32 compute), bfloat16 packed for the BF16 kernel, or ggml's quantized blocks — made once at load,
/// and the only copy kept.
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
    /// With quantization: the format and `outputSize` rows of blocks, interleaved 8 rows at a time
    /// (`tandem_quant_interleave`: one weight stream for 8 rows' products).
    private let quantized: (format: WeightQuantization, blocks: UnsafeMutableRawPointer)?
    /// Weights of several formats stacked by output rows (a GGUF file's q and v projections may differ).
    private let segments: [LinearWeight]?
    /// The quantization the weight is stored in; nil: unquantized (or segments of several).
    public var quantization: WeightQuantization? { quantized?.format }

    /// `weight` for `precision`, multiplied on `threads` threads; `.bfloat16` rounds fp32/fp16 weights to
    /// bfloat16 and packs them.
    ///
    /// - Precondition: `.bfloat16` only where `ComputePrecision.bfloat16Available`.
    public init(_ weight: Tensor, precision: ComputePrecision, threads: Int = 1) {
        precondition(weight.rank == 2 && weight.dtype.isFloatingPoint, "a linear weight is a 2-D float tensor")
        self.threads = max(threads, 1)
        (outputSize, inputSize) = (weight.shape[0], weight.shape[1])
        (quantized, segments) = (nil, nil)
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

    /// `weight` quantized to `quantization`'s blocks (fp32 activations), multiplied on `threads` threads (and
    /// quantized on them: the k-quants' scale search costs ~20 passes over each sub-block).
    ///
    /// - Precondition: `in_features` is a multiple of the block (the caller refuses other widths with their names).
    public init(_ weight: Tensor, quantization: WeightQuantization, threads: Int = 1) {
        precondition(weight.rank == 2 && weight.dtype.isFloatingPoint, "a linear weight is a 2-D float tensor")
        (outputSize, inputSize) = (weight.shape[0], weight.shape[1])
        precondition(inputSize % quantization.blockElements == 0, "\(quantization.rawValue) needs rows of whole blocks, got \(inputSize) columns")
        self.threads = max(threads, 1)
        let rowBytes = quantization.rowBytes(columns: inputSize)
        let blocks = UnsafeMutableRawPointer.allocate(byteCount: max(outputSize * rowBytes, 1), alignment: 64)
        let columns = inputSize
        quantization.quantize(rows: outputSize, columns: columns, threads: self.threads, into: blocks) { index, row in
            weight.copyFloats(from: index * columns, count: columns, into: row)
        }
        tandem_quant_interleave(quantization.format, blocks, outputSize, inputSize)
        (dense, packed, segments) = (nil, nil, nil)
        quantized = (quantization, blocks)
        byteCount = outputSize * rowBytes
    }

    /// A weight already in `quantization`'s blocks (`outputSize` rows of `inputSize` values, ggml's bytes row
    /// after row, as a GGUF file stores them), multiplied on `threads` threads.
    ///
    /// - Precondition: `inputSize` is a multiple of 32 and `blocks` holds exactly the rows' bytes.
    public init(blocks: [UInt8], quantization: WeightQuantization, outputSize: Int, inputSize: Int, threads: Int = 1) {
        precondition(inputSize % quantization.blockElements == 0, "\(quantization.rawValue) needs rows of whole blocks, got \(inputSize) columns")
        precondition(blocks.count == outputSize * quantization.rowBytes(columns: inputSize), "\(blocks.count) bytes for \(outputSize) rows of \(inputSize) \(quantization.rawValue) values")
        (self.outputSize, self.inputSize) = (outputSize, inputSize)
        self.threads = max(threads, 1)
        let storage = UnsafeMutableRawPointer.allocate(byteCount: max(blocks.count, 1), alignment: 64)
        blocks.withUnsafeBytes { if let base = $0.baseAddress { storage.copyMemory(from: base, byteCount: $0.count) } }
        tandem_quant_interleave(quantization.format, storage, outputSize, inputSize)
        (dense, packed, segments) = (nil, nil, nil)
        quantized = (quantization, storage)
        byteCount = blocks.count
    }

    /// `parts` stacked by output rows: the first's outputs, then the next's (weights of different formats that one
    /// layer multiplies together, such as a GGUF file's Q4_K query and Q6_K value projections).
    ///
    /// - Precondition: the parts share their input size.
    public init(stacking parts: [LinearWeight]) {
        precondition(!parts.isEmpty && parts.allSatisfy { $0.inputSize == parts[0].inputSize }, "stacked weights share their input size")
        (outputSize, inputSize) = (parts.reduce(0) { $0 + $1.outputSize }, parts[0].inputSize)
        threads = parts[0].threads
        byteCount = parts.reduce(0) { $0 + $1.byteCount }
        (dense, packed, quantized) = (nil, nil, nil)
        segments = parts
    }

    deinit {
        packed?.deallocate()
        quantized?.blocks.deallocate()
    }

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

    /// Row `index`'s values as fp32 into `target` (`inputSize` values): a weight of blocks read as a table, such as
    /// a GGUF file's token embeddings.
    ///
    /// - Precondition: the weight is stored as blocks of one format.
    public func dequantizeRow(_ index: Int, into target: UnsafeMutablePointer<Float>) {
        guard let quantized else { preconditionFailure("dequantizeRow reads a weight stored as blocks") }
        precondition((0..<outputSize).contains(index), "row \(index) of \(outputSize)")
        tandem_dequantize_weight_rows(quantized.format.format, quantized.blocks, outputSize, inputSize, index, 1, target)
    }

    /// `output[m, outputSize] = input[m, inputSize] · weightᵀ` (fp32 input and output), on `threads` threads.
    public func apply(_ input: Tensor, into output: Tensor) {
        if let segments { return applySegments(segments, input, into: output) }
        if let quantized { return applyQuantized(input, into: output, format: quantized.format, blocks: quantized.blocks) }
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

    /// Quantized weights: the input rows quantized per block (to q8_0; q8_K for the k-quants), then up to
    /// `quantizedRowLimit(format)` rows (every row but q6_K's past 64) multiplied in integers, more by sgemm over the
    /// dequantized inputs and 256-row blocks of the weight dequantized to fp32 — the same products either way (the
    /// integer sums exact, sgemm's in fp32), so a row's result does not depend on the batch around it.
    private func applyQuantized(_ input: Tensor, into output: Tensor, format: WeightQuantization, blocks: UnsafeMutableRawPointer) {
        precondition(input.dtype == .float32 && output.dtype == .float32, "linear computes on float32 activations")
        let m = input.shape[0]
        precondition(input.shape == [m, inputSize] && output.shape == [m, outputSize], "shapes \(input.shape) · [\(outputSize), \(inputSize)]ᵀ → \(output.shape) do not fit")
        if m == 0 || outputSize == 0 { return }
        let (n, k) = (outputSize, inputSize)
        let x = input.baseAddress.assumingMemoryBound(to: Float.self)
        let y = output.baseAddress.assumingMemoryBound(to: Float.self)
        // The inputs quantized per block, whichever path multiplies: a row's result never depends on the batch
        // around it.
        let inputRowBytes = format.inputRowBytes(columns: k)
        let quantizedInputs = UnsafeMutableRawPointer.allocate(byteCount: m * inputRowBytes, alignment: 64)
        defer { quantizedInputs.deallocate() }
        for row in 0..<m { tandem_quantize_row(format.inputFormat, x + row * k, k, quantizedInputs + row * inputRowBytes) }
        guard m <= Self.quantizedRowLimit(format) else {
            // sgemm on both sides dequantized: the same products as the integer kernel's, summed in fp32.
            let inputs = UnsafeMutablePointer<Float>.allocate(capacity: m * k)
            defer { inputs.deallocate() }
            tandem_dequantize_rows(format.inputFormat, quantizedInputs, m, k, inputs)
            let rows = min(Matmul.weightRowsPerBlock, n)
            let scratch = UnsafeMutablePointer<Float>.allocate(capacity: rows * k)
            defer { scratch.deallocate() }
            var first = 0
            while first < n {
                let count = min(rows, n - first)
                tandem_dequantize_weight_rows(format.format, blocks, n, k, first, count, scratch)
                Matmul.gemm(m: m, n: count, k: k, a: inputs, lda: k, b: scratch, ldb: k, transposeB: true, c: y + first, ldc: n)
                first += count
            }
            return
        }
        // Parts of whole 8-row groups (the interleaved layout's), the last taking the rows past the last group.
        let (groups, parts) = (n / 8, min(threads, max(n / 64, 1)))
        let (activations, weights, results) = (UncheckedSendable(UnsafeRawPointer(quantizedInputs)), UncheckedSendable(UnsafeRawPointer(blocks)), UncheckedSendable(y))
        let avx2: Int32 = Self.hasAVX2 ? 1 : 0
        DispatchQueue.concurrentPerform(iterations: parts) { part in
            let last = part == parts - 1 ? n : 8 * (groups * (part + 1) / parts)
            tandem_linear_quant(format.format, avx2, activations.value, m, k, weights.value, n, 8 * (groups * part / parts), last, results.value)
        }
    }

    /// Each segment's outputs into its columns of `output`.
    private func applySegments(_ segments: [LinearWeight], _ input: Tensor, into output: Tensor) {
        let m = input.shape[0]
        precondition(output.shape == [m, outputSize], "shapes \(input.shape) · [\(outputSize), \(inputSize)]ᵀ → \(output.shape) do not fit")
        var first = 0
        for segment in segments {
            let part = Tensor(zeros: [m, segment.outputSize], dtype: .float32)
            segment.apply(input, into: part)
            for row in 0..<m { _ = output.row(row, columns: first..<(first + segment.outputSize)).update(fromContentsOf: part.row(row)) }
            first += segment.outputSize
        }
    }

    /// Up to this many input rows weights of `format` multiply in integers; more go to sgemm over dequantized
    /// blocks. Measured in a C harness (one thread, `[1024, 2816]` and `[2816, 1024]` weights, 128–2,048 input rows,
    /// GFLOP/s, integer kernel against dequantize + OpenBLAS sgemm): q4_0 143–155 against 90–96, q4_K 149–155 against
    /// 84–95, q8_0 96–105 against 78–96 — the integer kernel at every size, so prompts too — but q6_K 83–86 against
    /// 89–93 from 512 rows (even at 128–256), so q6_K keeps sgemm past 64 rows, where batched decode measured it
    /// ahead (64 prompts × (128 in, 64 out), output tokens/s, limit 64 against 8: 87.6 / 74.5 and 82.0 / 72.5).
    static func quantizedRowLimit(_ format: WeightQuantization) -> Int { format == .q6_K ? 64 : .max }

    /// Whether the quantized kernel takes its AVX2 path.
    private static let hasAVX2 = tandem_has_avx2() != 0
}
