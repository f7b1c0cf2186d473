import TandemTensor

/// A GGUF file read as the Hugging Face checkpoint llama.cpp's `convert_hf_to_gguf.py` made it from: its
/// metadata as a `config.json` (`ModelConfig`), its `tokenizer.ggml.*` keys as a `tokenizer.json`, and its
/// tensors under their Hugging Face names — the converter's renaming and, for the `llama` architecture, its
/// permutation of the query and key rows (llama.cpp rotates interleaved pairs, transformers the two halves of a
/// head) undone. Q8_0, Q4_0, Q4_K and Q6_K tensors stay ggml blocks, which the quantized kernels multiply as
/// they are; F32, F16 and BF16 are numbers. Architectures `llama` (Llama, Mistral, Mixtral with merged expert tensors)
/// and `qwen2`.
public final class GGUFCheckpoint: WeightStore {
    public let file: GGUFFile
    /// `general.architecture`.
    public let architecture: String
    /// The model's shape, from the architecture's metadata keys.
    public let config: ModelConfig
    private let entries: [String: Entry]
    public let keys: [String]

    /// Where a Hugging Face tensor lives in the file: rows `firstRow…` of a GGUF tensor viewed as
    /// `[rows, columns]` (a merged expert tensor holds every expert's rows), in the converter's row order.
    private struct Entry {
        let tensor: GGUFTensorInfo
        /// The Hugging Face shape: `[columns]` or `[rows, columns]`.
        let shape: [Int]
        let firstRow: Int
        /// For a permuted query or key tensor, the head dimension of the permutation.
        let permutedHead: Int?
    }

    /// The architectures Tandem reads, with the Hugging Face model type each becomes.
    static let architectures = ["llama", "qwen2"]
    /// The tensor types Tandem reads.
    static let types: [GGMLType: StoredFormat] = [
        .f32: .dense(.float32), .f16: .dense(.float16), .bf16: .dense(.bfloat16), .q8_0: .blocks(.q8_0), .q4_0: .blocks(.q4_0),
        .q4_K: .blocks(.q4_K), .q6_K: .blocks(.q6_K),
    ]

    public var path: String { file.path }

    /// Opens and checks `path`: a supported architecture, the metadata a model needs, tensor types Tandem
    /// multiplies, and every tensor under a name the converter writes.
    ///
    /// - Throws: `ModelLoadError` naming the key, tensor or type at fault.
    public init(path: String) throws(ModelLoadError) {
        file = try GGUFFile(path: path)
        let metadata = Metadata(file: file)
        architecture = try metadata.string("general.architecture")
        guard Self.architectures.contains(architecture) else {
            throw .unsupported(path: path, detail: "GGUF architecture '\(architecture)'; Tandem reads \(Self.architectures.joined(separator: " and "))")
        }
        for tensor in file.tensors where Self.types[tensor.type] == nil {
            throw .unsupportedDType(
                key: tensor.name, path: path, dtype: "\(tensor.type) (Tandem reads GGUF tensors in \(Self.types.keys.map(\.description).sorted().joined(separator: ", ")))")
        }
        if file.tensors.contains(where: { $0.name == "rope_freqs.weight" }) {
            throw .unsupported(path: path, detail: "RoPE frequency factors (rope_freqs.weight, Llama 3.1's long-context scaling)")
        }
        let tensors = Dictionary(file.tensors.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        config = try Self.config(metadata, architecture: architecture, tensors: tensors)
        var entries: [String: Entry] = [:]
        for tensor in file.tensors {
            for (name, entry) in try Self.entries(of: tensor, config: config, permuted: architecture == "llama", path: path) {
                entries[name] = entry
            }
        }
        self.entries = entries
        keys = entries.keys.sorted()
    }

    /// The block format of the decoder layers' weights stored as blocks with the largest block (the one whose
    /// rows a tensor-parallel split must keep whole), if any.
    public var layerBlocks: WeightQuantization? {
        file.tensors.filter { $0.name.hasPrefix("blk.") }
            .compactMap { if case let .blocks(format) = Self.types[$0.type]! { format } else { nil } }
            .max { $0.blockElements < $1.blockElements }
    }

    public func shape(of key: String) throws(ModelLoadError) -> [Int] { try entry(key).shape }

    public func format(of key: String) throws(ModelLoadError) -> StoredFormat { Self.types[try entry(key).tensor.type]! }

    public func load(_ key: String, slice: (dim: Int, range: Range<Int>)?) throws(ModelLoadError) -> Tensor {
        let entry = try entry(key)
        let shape = entry.shape
        let matrix = shape.count == 2
        let (rowCount, columnCount) = matrix ? (shape[0], shape[1]) : (1, shape[0])
        var (rows, columns) = (0..<rowCount, 0..<columnCount)
        if let slice {
            precondition(slice.dim < shape.count && slice.range.lowerBound >= 0 && slice.range.upperBound <= shape[slice.dim], "slice \(slice) of \(shape)")
            if matrix && slice.dim == 0 { rows = slice.range } else { columns = slice.range }
        }
        let format = Self.types[entry.tensor.type]!
        let dtype: DType = if case let .dense(dtype) = format { dtype } else { .float32 }
        let result = Tensor(zeros: matrix ? [rows.count, columns.count] : [columns.count], dtype: dtype)
        guard result.count > 0 else { return result }
        let data = file.data(of: entry.tensor).baseAddress!
        let element = dtype.byteSize
        let rowBytes: Int = if case let .blocks(quantization) = format { quantization.rowBytes(columns: columnCount) } else { columnCount * element }
        withUnsafeTemporaryAllocation(byteCount: columnCount * element, alignment: 16) { row in
            let row = row.baseAddress!
            if !matrix {
                // A vector: each element moves as a row of the permutation would (a query or key bias).
                Self.decodeRow(data, format: format, columns: columnCount, into: row)
                for (target, column) in columns.enumerated() {
                    let source = entry.permutedHead.map { Self.fileRow(column, head: $0) } ?? column
                    (result.baseAddress + target * element).copyMemory(from: row + source * element, byteCount: element)
                }
                return
            }
            for (target, hfRow) in rows.enumerated() {
                let fileRow = entry.firstRow + (entry.permutedHead.map { Self.fileRow(hfRow, head: $0) } ?? hfRow)
                Self.decodeRow(data + fileRow * rowBytes, format: format, columns: columnCount, into: row)
                (result.baseAddress + target * columns.count * element).copyMemory(from: row + columns.lowerBound * element, byteCount: columns.count * element)
            }
        }
        return result
    }

    public func blocks(_ key: String, rows: Range<Int>, columns: Range<Int>) throws(ModelLoadError) -> [UInt8] {
        let entry = try entry(key)
        guard entry.shape.count == 2, case let .blocks(format) = Self.types[entry.tensor.type]! else {
            throw .unsupportedDType(key: key, path: path, dtype: "\(entry.tensor.type) (not 2-D ggml blocks)")
        }
        let size = format.blockElements
        guard columns.lowerBound % size == 0, columns.count % size == 0 else {
            throw .cutBlocks(key, quantization: format, columns: columns.count, path: path)
        }
        precondition(rows.lowerBound >= 0 && rows.upperBound <= entry.shape[0] && columns.upperBound <= entry.shape[1], "rows \(rows), columns \(columns) of \(entry.shape)")
        let rowBytes = format.rowBytes(columns: entry.shape[1])
        let (start, count) = (columns.lowerBound / size * format.blockBytes, format.rowBytes(columns: columns.count))
        var bytes = [UInt8](repeating: 0, count: rows.count * count)
        guard !bytes.isEmpty else { return bytes }
        let data = file.data(of: entry.tensor)
        bytes.withUnsafeMutableBytes { target in
            for (index, hfRow) in rows.enumerated() {
                let fileRow = entry.firstRow + (entry.permutedHead.map { Self.fileRow(hfRow, head: $0) } ?? hfRow)
                (target.baseAddress! + index * count).copyMemory(from: data.baseAddress! + fileRow * rowBytes + start, byteCount: count)
            }
        }
        return bytes
    }

    private func entry(_ key: String) throws(ModelLoadError) -> Entry {
        guard let entry = entries[key] else { throw .missingTensor(key: key, path: path) }
        return entry
    }

    /// The converter's row of Hugging Face row `row` of a permuted query or key weight: within each head of
    /// `head` rows, half `i` position `j` (rotate-half) is stored at `2j + i` (interleaved pairs).
    static func fileRow(_ row: Int, head: Int) -> Int {
        let (index, within) = row.quotientAndRemainder(dividingBy: head)
        let (half, position) = within.quotientAndRemainder(dividingBy: head / 2)
        return index * head + 2 * position + half
    }

    /// One row of `columns` values in `format` decoded into `target`: dense bytes copied, blocks widened to fp32.
    private static func decodeRow(_ source: UnsafeRawPointer, format: StoredFormat, columns: Int, into target: UnsafeMutableRawPointer) {
        switch format {
        case let .dense(dtype): target.copyMemory(from: source, byteCount: columns * dtype.byteSize)
        case let .blocks(quantization): quantization.dequantize(source, rows: 1, columns: columns, into: target.assumingMemoryBound(to: Float.self))
        }
    }

    /// The Hugging Face tensors `tensor` holds (several for a merged expert tensor).
    private static func entries(of tensor: GGUFTensorInfo, config: ModelConfig, permuted: Bool, path: String) throws(ModelLoadError) -> [(String, Entry)] {
        let shape = tensor.shape
        func whole(_ name: String, permutedHead: Int? = nil) throws(ModelLoadError) -> [(String, Entry)] {
            guard shape.count <= 2 else { throw .wrongShape(key: tensor.name, path: path, expected: "1 or 2 dimensions", actual: "\(tensor.type)\(shape)") }
            return [(name, Entry(tensor: tensor, shape: shape, firstRow: 0, permutedHead: permutedHead))]
        }
        if let name = topNames.first(where: { $0.gguf == tensor.name })?.hf { return try whole(name) }
        let parts = tensor.name.split(separator: ".", maxSplits: 2).map(String.init)
        guard parts.count == 3, parts[0] == "blk", let layer = Int(parts[1]), (0..<config.layerCount).contains(layer) else {
            throw .unexpectedTensor(key: tensor.name, path: path)
        }
        let prefix = "model.layers.\(layer)"
        if let name = layerNames.first(where: { $0.gguf == parts[2] })?.hf {
            return try whole("\(prefix).\(name)", permutedHead: permuted && permutedNames.contains(name) ? config.headDimension : nil)
        }
        guard let matrix = expertNames.first(where: { $0.gguf == parts[2] })?.hf else { throw .unexpectedTensor(key: tensor.name, path: path) }
        // [experts, rows, columns]: expert e's matrix is rows e·rows ..< (e + 1)·rows of the flattened tensor.
        guard shape.count == 3, shape[0] == config.expertCount ?? 0 else {
            throw .wrongShape(key: tensor.name, path: path, expected: "[\(config.expertCount ?? 0), rows, columns]", actual: "\(tensor.type)\(shape)")
        }
        return (0..<shape[0]).map { expert in
            ("\(prefix).block_sparse_moe.experts.\(expert).\(matrix).weight", Entry(tensor: tensor, shape: [shape[1], shape[2]], firstRow: expert * shape[1], permutedHead: nil))
        }
    }

    /// llama.cpp's names of the tensors outside the layers, and transformers'.
    static let topNames: [(gguf: String, hf: String)] = [
        ("token_embd.weight", "model.embed_tokens.weight"), ("output_norm.weight", "model.norm.weight"), ("output.weight", "lm_head.weight"),
    ]
    /// llama.cpp's names of a layer's tensors (after `blk.N.`), and transformers' (after `model.layers.N.`).
    static let layerNames: [(gguf: String, hf: String)] = [
        ("attn_norm.weight", "input_layernorm.weight"), ("ffn_norm.weight", "post_attention_layernorm.weight"),
        ("attn_q.weight", "self_attn.q_proj.weight"), ("attn_q.bias", "self_attn.q_proj.bias"),
        ("attn_k.weight", "self_attn.k_proj.weight"), ("attn_k.bias", "self_attn.k_proj.bias"),
        ("attn_v.weight", "self_attn.v_proj.weight"), ("attn_v.bias", "self_attn.v_proj.bias"),
        ("attn_output.weight", "self_attn.o_proj.weight"), ("attn_output.bias", "self_attn.o_proj.bias"),
        ("ffn_gate.weight", "mlp.gate_proj.weight"), ("ffn_up.weight", "mlp.up_proj.weight"), ("ffn_down.weight", "mlp.down_proj.weight"),
        ("ffn_gate_inp.weight", "block_sparse_moe.gate.weight"),
    ]
    /// The layer tensors the converter permutes for the `llama` architecture (transformers' names).
    static let permutedNames: Set<String> = ["self_attn.q_proj.weight", "self_attn.q_proj.bias", "self_attn.k_proj.weight", "self_attn.k_proj.bias"]
    /// llama.cpp's merged expert tensors, and the matrix each holds of every Mixtral expert.
    static let expertNames: [(gguf: String, hf: String)] = [("ffn_gate_exps.weight", "w1"), ("ffn_up_exps.weight", "w3"), ("ffn_down_exps.weight", "w2")]

    /// The `config.json` the converter read, rebuilt from the architecture's keys.
    private static func config(_ metadata: Metadata, architecture: String, tensors: [String: GGUFTensorInfo]) throws(ModelLoadError) -> ModelConfig {
        let key = { (name: String) in "\(architecture).\(name)" }
        let heads = try metadata.positive(key("attention.head_count"))
        let hidden = try metadata.positive(key("embedding_length"))
        let experts = try metadata.positive(key("expert_count"), default: 0)
        var json: [String: Any] = [
            "model_type": architecture == "qwen2" ? "qwen2" : experts > 0 ? "mixtral" : "llama",
            "hidden_size": hidden,
            "intermediate_size": try metadata.positive(key("feed_forward_length")),
            "num_hidden_layers": try metadata.positive(key("block_count")),
            "num_attention_heads": heads,
            "num_key_value_heads": try metadata.positive(key("attention.head_count_kv"), default: heads),
            "max_position_embeddings": try metadata.positive(key("context_length")),
            "rms_norm_eps": try metadata.number(key("attention.layer_norm_rms_epsilon")),
            "rope_theta": try metadata.number(key("rope.freq_base"), default: 10_000),
            "tie_word_embeddings": tensors["output.weight"] == nil,
            "attention_bias": tensors["blk.0.attn_q.bias"] != nil,
        ]
        let tokens = try metadata.strings("tokenizer.ggml.tokens")
        json["vocab_size"] = try metadata.positive(key("vocab_size"), default: tokens.count)
        let headDimension = try metadata.positive(key("attention.key_length"), default: hidden / heads)
        json["head_dim"] = headDimension
        let valueLength = try metadata.positive(key("attention.value_length"), default: headDimension)
        guard valueLength == headDimension else {
            throw .unsupported(path: metadata.path, detail: "\(key("attention.value_length")) \(valueLength) differs from the key length \(headDimension)")
        }
        guard architecture != "llama" || headDimension % 2 == 0 else {
            throw .unsupported(path: metadata.path, detail: "an odd head dimension \(headDimension) (rotary pairs of the llama architecture)")
        }
        let rotary = try metadata.positive(key("rope.dimension_count"), default: headDimension)
        guard rotary == headDimension else {
            throw .unsupported(path: metadata.path, detail: "\(key("rope.dimension_count")) \(rotary): RoPE over part of a \(headDimension)-value head")
        }
        if let kind = try metadata.optionalString(key("rope.scaling.type")), kind != "none" {
            guard kind == "linear" else { throw .unsupported(path: metadata.path, detail: "\(key("rope.scaling.type")) '\(kind)'; Tandem reads none and linear") }
            json["rope_scaling"] = ["type": "linear", "factor": try metadata.number(key("rope.scaling.factor"))]
        }
        if experts > 0 {
            json["num_local_experts"] = experts
            json["num_experts_per_tok"] = try metadata.positive(key("expert_used_count"))
        }
        if let bos = try metadata.optionalInteger("tokenizer.ggml.bos_token_id") { json["bos_token_id"] = bos }
        var endIDs: [Int] = []
        for name in ["eos", "eot", "eom"] {
            if let id = try metadata.optionalInteger("tokenizer.ggml.\(name)_token_id"), !endIDs.contains(id) { endIDs.append(id) }
        }
        json["eos_token_id"] = endIDs
        return try ModelConfig(json: json, path: metadata.path)
    }
}

/// Typed reads of GGUF metadata, with errors naming the key.
struct Metadata {
    let file: GGUFFile
    var path: String { file.path }

    func value(_ key: String) throws(ModelLoadError) -> GGUFValue {
        guard let value = file[key] else { throw .malformed(path: path, detail: "metadata key '\(key)' is missing") }
        return value
    }

    func optionalString(_ key: String) throws(ModelLoadError) -> String? {
        guard let value = file[key] else { return nil }
        guard case let .string(text) = value else { throw .malformed(path: path, detail: "metadata '\(key)' must be a string, got \(value)") }
        return text
    }

    func string(_ key: String) throws(ModelLoadError) -> String {
        guard let text = try optionalString(key) else { throw .malformed(path: path, detail: "metadata key '\(key)' is missing") }
        return text
    }

    func optionalInteger(_ key: String) throws(ModelLoadError) -> Int? {
        guard let value = file[key] else { return nil }
        guard let integer = value.integer, integer >= 0 else { throw .malformed(path: path, detail: "metadata '\(key)' must be a non-negative integer, got \(value)") }
        return integer
    }

    /// A positive integer no larger than 2³¹ − 1 (so that products of sizes fit).
    func positive(_ key: String, default fallback: Int? = nil) throws(ModelLoadError) -> Int {
        guard let value = file[key] else {
            guard let fallback else { throw .malformed(path: path, detail: "metadata key '\(key)' is missing") }
            return fallback
        }
        guard let integer = value.integer, integer >= 0, integer <= Int(Int32.max), integer > 0 || fallback == 0 else {
            throw .malformed(path: path, detail: "metadata '\(key)' must be a positive integer, got \(value)")
        }
        return integer
    }

    func number(_ key: String, default fallback: Double? = nil) throws(ModelLoadError) -> Double {
        guard let value = file[key] else {
            guard let fallback else { throw .malformed(path: path, detail: "metadata key '\(key)' is missing") }
            return fallback
        }
        let number: Double? =
            switch value {
            case let .float32(v): Double(v)
            case let .float64(v): v
            default: value.integer.map(Double.init)
            }
        guard let number, number.isFinite, number > 0 else { throw .malformed(path: path, detail: "metadata '\(key)' must be a positive number, got \(value)") }
        return number
    }

    func strings(_ key: String) throws(ModelLoadError) -> [String] {
        let value = try value(key)
        guard case let .array(.string, items) = value else { throw .malformed(path: path, detail: "metadata '\(key)' must be an array of strings, got \(value)") }
        return items.map { item in
            guard case let .string(text) = item else { return "" }
            return text
        }
    }

    func integers(_ key: String) throws(ModelLoadError) -> [Int]? {
        guard let value = file[key] else { return nil }
        guard case let .array(_, items) = value, let integers = Optional(items.compactMap(\.integer)), integers.count == items.count else {
            throw .malformed(path: path, detail: "metadata '\(key)' must be an array of integers, got \(value)")
        }
        return integers
    }

    func flag(_ key: String) throws(ModelLoadError) -> Bool? {
        guard let value = file[key] else { return nil }
        guard case let .bool(flag) = value else { throw .malformed(path: path, detail: "metadata '\(key)' must be a bool, got \(value)") }
        return flag
    }
}
