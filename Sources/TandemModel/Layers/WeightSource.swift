import TandemTensor

/// A checkpoint as the layers read it: each weight checked against its full shape, then this rank's slice
/// loaded; every key read is recorded so the model can reject tensors it did not use.
final class WeightSource {
    let checkpoint: Checkpoint
    /// What the linear layers multiply in (their weights are prepared for it at load).
    let precision: ComputePrecision
    /// Threads each linear layer runs on.
    let threads: Int
    /// The blocks the linear layers' weights are quantized to as they load; nil: kept as they are.
    let quantization: WeightQuantization?
    private(set) var used: Set<String> = []

    init(_ checkpoint: Checkpoint, precision: ComputePrecision, quantization: WeightQuantization? = nil, threads: Int) {
        self.checkpoint = checkpoint
        self.precision = precision
        self.quantization = quantization
        self.threads = threads
    }

    /// A linear layer's weight `name` (this rank's slice) in the form `precision` multiplies, or quantized, on
    /// `threads` threads.
    ///
    /// - Throws: `ModelLoadError.unsupported` when quantizing a slice whose rows are not whole 32-value blocks.
    func linear(_ weight: Tensor, name: String) throws(ModelLoadError) -> LinearWeight {
        guard let quantization else { return LinearWeight(weight, precision: precision, threads: threads) }
        guard weight.shape[1] % WeightQuantization.blockSize == 0 else {
            throw .cutBlocks(name, quantization: quantization, columns: weight.shape[1], path: checkpoint.directory)
        }
        return LinearWeight(weight, quantization: quantization, threads: threads)
    }

    /// Tensor `key`, which must have `shape` and a float dtype; with `slice`, only entries `slice.range` of
    /// dimension `slice.dim`.
    func load(_ key: String, shape: [Int], slice: (dim: Int, range: Range<Int>)? = nil) throws(ModelLoadError) -> Tensor {
        try checkpoint.require(key, shape: shape)
        let info = try checkpoint.info(key)
        guard info.dtype.isFloatingPoint else {
            throw .unsupportedDType(key: key, path: checkpoint.directory, dtype: "\(info.dtype) (weights must be F32, F16 or BF16)")
        }
        used.insert(key)
        guard let slice else { return try checkpoint.load(key) }
        return try checkpoint.load(key, dim: slice.dim, range: slice.range)
    }

    /// Expert `expert`'s matrix of a fused `[experts, rows, columns]` tensor `key` (transformers 5's MoE layout):
    /// its rows in `rows` (stacked in order) and, of each, the entries `columns` — this rank's slice.
    func expertMatrix(_ key: String, shape: [Int], expert: Int, rows: [Range<Int>], columns: Range<Int>) throws(ModelLoadError) -> Tensor {
        try checkpoint.require(key, shape: shape)
        let info = try checkpoint.info(key)
        guard info.dtype.isFloatingPoint else {
            throw .unsupportedDType(key: key, path: checkpoint.directory, dtype: "\(info.dtype) (weights must be F32, F16 or BF16)")
        }
        used.insert(key)
        let slab = try checkpoint.load(key, dim: 0, range: expert..<(expert + 1))
        let element = slab.dtype.byteSize
        let result = Tensor(zeros: [rows.reduce(0) { $0 + $1.count }, columns.count], dtype: slab.dtype)
        var target = 0
        for range in rows {
            for row in range {
                (result.baseAddress + target).copyMemory(
                    from: slab.baseAddress + (row * shape[2] + columns.lowerBound) * element, byteCount: columns.count * element)
                target += columns.count * element
            }
        }
        return result
    }

    /// Checks that tensor `key` is there with `shape` and marks it read, without loading it: for a tensor another
    /// rank holds (an expert placed elsewhere), so `checkAllUsed` does not take it for a stray.
    func claim(_ key: String, shape: [Int]) throws(ModelLoadError) {
        try checkpoint.require(key, shape: shape)
        used.insert(key)
    }

    /// Tensor `key` (whole) widened to fp32 once: for small replicated weights, such as norms, that a kernel
    /// reads on every step.
    func loadFloat32(_ key: String, shape: [Int]) throws(ModelLoadError) -> Tensor {
        let tensor = try load(key, shape: shape)
        guard tensor.dtype != .float32 else { return tensor }
        let widened = Tensor(zeros: shape, dtype: .float32)
        tensor.copyFloats(from: 0, count: tensor.count, into: widened.baseAddress.assumingMemoryBound(to: Float.self))
        return widened
    }

    /// Several tensors' slices along dimension 0 stacked into one (q/k/v, gate/up), in the dtype they share.
    func stack(_ parts: [(key: String, shape: [Int], rows: Range<Int>)]) throws(ModelLoadError) -> Tensor {
        var loaded: [Tensor] = []
        for part in parts { loaded.append(try load(part.key, shape: part.shape, slice: (0, part.rows))) }
        let dtype = loaded[0].dtype
        for (part, tensor) in zip(parts, loaded) where tensor.dtype != dtype {
            throw .wrongShape(key: part.key, path: checkpoint.directory, expected: "dtype \(dtype) like \(parts[0].key)", actual: "\(tensor.dtype)")
        }
        let columns = loaded[0].rank == 2 ? loaded[0].shape[1] : 1
        let rows = loaded.reduce(0) { $0 + $1.shape[0] }
        let stacked = Tensor(zeros: loaded[0].rank == 2 ? [rows, columns] : [rows], dtype: dtype)
        var offset = 0
        for tensor in loaded {
            (stacked.baseAddress + offset).copyMemory(from: tensor.baseAddress, byteCount: tensor.byteCount)
            offset += tensor.byteCount
        }
        return stacked
    }

    /// Rejects checkpoint tensors the model did not read (`ignoring` those a checkpoint may carry unused, such
    /// as rotary inverse frequencies).
    func checkAllUsed(ignoring ignorable: (String) -> Bool) throws(ModelLoadError) {
        for key in checkpoint.keys where !used.contains(key) && !ignorable(key) {
            throw .unexpectedTensor(key: key, path: checkpoint.directory)
        }
    }
}
