import TandemTensor

/// A model's weights as the layers read them: each weight checked against its full shape, then this rank's slice
/// loaded; every key read is recorded so the model can reject tensors it did not use.
final class WeightSource {
    let store: any WeightStore
    /// What the linear layers multiply in (their weights are prepared for it at load).
    let precision: ComputePrecision
    /// Threads each linear layer runs on.
    let threads: Int
    /// The blocks the linear layers' float weights are quantized to as they load; nil: kept as they are.
    let quantization: WeightQuantization?
    private(set) var used: Set<String> = []
    private let names: Set<String>

    init(_ store: any WeightStore, precision: ComputePrecision, quantization: WeightQuantization? = nil, threads: Int) {
        self.store = store
        self.precision = precision
        self.quantization = quantization
        self.threads = threads
        names = Set(store.keys)
    }

    /// Whether the store has a tensor `key`.
    func has(_ key: String) -> Bool { names.contains(key) }

    /// A linear layer's weight on this rank: the rows `rows` of each part (stacked in order), of each row the
    /// values of `columns`, in the form `precision` multiplies. Parts stored as ggml blocks stay those blocks (parts
    /// of different formats as a stack of weights); float parts are quantized when `quantization` is set. Where
    /// `columns` cuts a k-quant's super-blocks but not 32-value blocks (`WeightQuantization.fitting(columns:)`), the
    /// weight is stored as q8_0 instead: quantized so from float parts, and from block parts' exact values.
    ///
    /// - Throws: `ModelLoadError.unsupported` when a block-stored weight would be requantized to another format,
    ///   or when `columns` cuts 32-value blocks.
    func linear(_ parts: [(key: String, shape: [Int], rows: Range<Int>)], columns: Range<Int>, name: String) throws(ModelLoadError) -> LinearWeight {
        var formats: [StoredFormat] = []
        for part in parts {
            try store.require(part.key, shape: part.shape)
            formats.append(try store.format(of: part.key))
        }
        let blockFormats = formats.compactMap { if case let .blocks(format) = $0 { format } else { nil } }
        if let quantization, let stored = blockFormats.first(where: { $0 != quantization }) {
            throw .unsupported(
                path: store.path,
                detail: "\(name) is stored as \(StoredFormat.blocks(stored)) blocks; --quantization \(quantization.rawValue) would quantize them again (leave it out to multiply the stored blocks)")
        }
        // Block parts this slice would cut are widened below, then stored as their fallback.
        let whole = blockFormats.allSatisfy { columns.lowerBound % $0.blockElements == 0 && columns.count % $0.blockElements == 0 }
        if blockFormats.count == parts.count && whole {
            // Consecutive parts of one format share a weight; a change of format starts the next segment.
            var segments: [LinearWeight] = []
            var start = 0
            while start < parts.count {
                let format = blockFormats[start]
                var end = start
                while end < parts.count && blockFormats[end] == format { end += 1 }
                var bytes: [UInt8] = []
                for part in parts[start..<end] {
                    bytes += try store.blocks(part.key, rows: part.rows, columns: columns)
                    used.insert(part.key)
                }
                segments.append(
                    LinearWeight(blocks: bytes, quantization: format, outputSize: parts[start..<end].reduce(0) { $0 + $1.rows.count }, inputSize: columns.count, threads: threads))
                start = end
            }
            return segments.count == 1 ? segments[0] : LinearWeight(stacking: segments)
        }
        // Float parts (or blocks mixed with floats or cut by `columns`, widened to their exact fp32 values) stacked;
        // cut blocks go back to blocks: the widest format stored, or its fallback.
        let widest = blockFormats.max { $0.blockElements < $1.blockElements }
        var loaded: [Tensor] = []
        for part in parts {
            let (allRows, allColumns) = (part.rows == 0..<part.shape[0], columns == 0..<part.shape[1])
            if allRows || allColumns {
                loaded.append(try load(part.key, shape: part.shape, slice: allRows ? (allColumns ? nil : (1, columns)) : (0, part.rows)))
            } else {
                loaded.append(Self.columns(columns, of: try load(part.key, shape: part.shape, slice: (0, part.rows))))
            }
        }
        let stacked = try Self.stacked(loaded, keys: parts.map(\.key), path: store.path)
        return try linear(stacked, name: name, quantization: whole ? quantization : widest)
    }

    /// A linear layer's weight already loaded (float), in the form `precision` multiplies, or quantized (to
    /// `quantization`'s fallback where its blocks do not fit the rows, `WeightQuantization.fitting(columns:)`).
    ///
    /// - Throws: `ModelLoadError.cutBlocks` for a slice whose rows no block fits.
    func linear(_ weight: Tensor, name: String) throws(ModelLoadError) -> LinearWeight {
        try linear(weight, name: name, quantization: quantization)
    }

    private func linear(_ weight: Tensor, name: String, quantization: WeightQuantization?) throws(ModelLoadError) -> LinearWeight {
        guard let quantization else { return LinearWeight(weight, precision: precision, threads: threads) }
        guard let stored = quantization.fitting(columns: weight.shape[1]) else {
            throw .cutBlocks(name, quantization: quantization, columns: weight.shape[1], path: store.path)
        }
        return LinearWeight(weight, quantization: stored, threads: threads)
    }

    /// Tensor `key`, which must have `shape` and hold numbers (float, or blocks widened to fp32); with `slice`,
    /// only entries `slice.range` of dimension `slice.dim`.
    func load(_ key: String, shape: [Int], slice: (dim: Int, range: Range<Int>)? = nil) throws(ModelLoadError) -> Tensor {
        try store.require(key, shape: shape)
        if case let .dense(dtype) = try store.format(of: key), !dtype.isFloatingPoint {
            throw .unsupportedDType(key: key, path: store.path, dtype: "\(dtype) (weights must be F32, F16 or BF16)")
        }
        used.insert(key)
        return try store.load(key, slice: slice)
    }

    /// Expert `expert`'s matrix of a fused `[experts, rows, columns]` tensor `key` (transformers 5's MoE layout):
    /// its rows in `rows` (stacked in order) and, of each, the entries `columns` — this rank's slice.
    func expertMatrix(_ key: String, shape: [Int], expert: Int, rows: [Range<Int>], columns: Range<Int>) throws(ModelLoadError) -> Tensor {
        let slab = try load(key, shape: shape, slice: (0, expert..<(expert + 1)))
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
        try store.require(key, shape: shape)
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

    /// Several tensors' slices along dimension 0 stacked into one (q/k/v biases), in the dtype they share.
    func stack(_ parts: [(key: String, shape: [Int], rows: Range<Int>)]) throws(ModelLoadError) -> Tensor {
        var loaded: [Tensor] = []
        for part in parts { loaded.append(try load(part.key, shape: part.shape, slice: (0, part.rows))) }
        return try Self.stacked(loaded, keys: parts.map(\.key), path: store.path)
    }

    /// Columns `columns` of a 2-D tensor, as a new tensor.
    private static func columns(_ columns: Range<Int>, of tensor: Tensor) -> Tensor {
        let (rows, width, element) = (tensor.shape[0], tensor.shape[1], tensor.dtype.byteSize)
        let result = Tensor(zeros: [rows, columns.count], dtype: tensor.dtype)
        for row in 0..<rows {
            (result.baseAddress + row * columns.count * element).copyMemory(
                from: tensor.baseAddress + (row * width + columns.lowerBound) * element, byteCount: columns.count * element)
        }
        return result
    }

    /// Tensors of one dtype and the same trailing shape, one after another along dimension 0.
    private static func stacked(_ loaded: [Tensor], keys: [String], path: String) throws(ModelLoadError) -> Tensor {
        guard loaded.count > 1 else { return loaded[0] }
        let dtype = loaded[0].dtype
        for (key, tensor) in zip(keys, loaded) where tensor.dtype != dtype {
            throw .wrongShape(key: key, path: path, expected: "dtype \(dtype) like \(keys[0])", actual: "\(tensor.dtype)")
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
        for key in store.keys where !used.contains(key) && !ignorable(key) {
            throw .unexpectedTensor(key: key, path: store.path)
        }
    }
}
