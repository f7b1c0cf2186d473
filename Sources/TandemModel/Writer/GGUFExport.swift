import Foundation
import TandemTensor
import TandemTokenizer

/// A checkpoint directory written as a GGUF file the way llama.cpp's `convert_hf_to_gguf.py` writes it: the
/// architecture's metadata keys, the tokenizer as `tokenizer.ggml.*`, tensors under llama.cpp's names (the
/// `llama` architecture's query and key rows permuted for interleaved rotary pairs, Mixtral's experts merged),
/// every 2-D weight but the router in `type` and vectors in F32. `GGUFCheckpoint` reads it back.
public enum GGUFExport {
    /// The tensor types a file can be written in.
    public static let types: [GGMLType] = [.f32, .f16, .bf16, .q8_0, .q4_0, .q4_K, .q6_K]

    /// Writes the checkpoint in `directory` to `path` with its weights in `type`.
    ///
    /// - Throws: `ModelLoadError` for a checkpoint this cannot express (a RoPE scaling GGUF keeps as a tensor, a
    ///   tokenizer whose pre-tokenizer llama.cpp has no name for, rows that are not whole blocks), file errors.
    public static func write(checkpoint directory: String, type: GGMLType, to path: String) throws {
        precondition(types.contains(type), "GGUF export writes \(types.map(\.description).joined(separator: ", "))")
        let config = try ModelConfig(directory: directory)
        let checkpoint = try Checkpoint(directory: directory)
        let architecture = config.modelType == "qwen2" ? "qwen2" : "llama"
        func key(_ name: String) -> String { "\(architecture).\(name)" }
        var metadata: [(key: String, value: GGUFValue)] = [
            ("general.architecture", .string(architecture)),
            ("general.name", .string(URL(fileURLWithPath: directory).standardizedFileURL.lastPathComponent)),
            (key("context_length"), .uint32(UInt32(config.maxPositions))),
            (key("embedding_length"), .uint32(UInt32(config.hiddenSize))),
            (key("block_count"), .uint32(UInt32(config.layerCount))),
            (key("feed_forward_length"), .uint32(UInt32(config.intermediateSize))),
            (key("attention.head_count"), .uint32(UInt32(config.headCount))),
            (key("attention.head_count_kv"), .uint32(UInt32(config.keyValueHeadCount))),
            (key("attention.key_length"), .uint32(UInt32(config.headDimension))),
            (key("attention.value_length"), .uint32(UInt32(config.headDimension))),
            (key("rope.dimension_count"), .uint32(UInt32(config.headDimension))),
            (key("rope.freq_base"), .float32(Float(config.ropeTheta))),
            (key("attention.layer_norm_rms_epsilon"), .float32(Float(config.rmsNormEpsilon))),
            (key("vocab_size"), .uint32(UInt32(config.vocabularySize))),
        ]
        switch config.ropeScaling {
        case .none: break
        case let .linear(factor): metadata += [(key("rope.scaling.type"), .string("linear")), (key("rope.scaling.factor"), .float32(Float(factor)))]
        case .llama3: throw ModelLoadError.unsupported(path: directory, detail: "Llama 3 RoPE scaling in a GGUF file (llama.cpp keeps it as a rope_freqs tensor)")
        }
        if let experts = config.expertCount {
            metadata += [(key("expert_count"), .uint32(UInt32(experts))), (key("expert_used_count"), .uint32(UInt32(config.expertsPerToken)))]
        }
        metadata.append(("general.file_type", .uint32(fileType(type))))
        metadata += try tokenizerMetadata(directory)

        var tensors: [GGUFWriter.Tensor] = []
        func add(_ name: String, values: Tensor, vector: Bool = false) throws {
            tensors.append(try encode(name, values, as: vector || values.rank == 1 ? .f32 : type, path: directory))
        }
        let keys = Set(checkpoint.keys)
        for (gguf, hf) in GGUFCheckpoint.topNames where keys.contains(hf) && !(hf == "lm_head.weight" && config.tieWordEmbeddings) {
            try add(gguf, values: try checkpoint.load(hf))
        }
        for layer in 0..<config.layerCount {
            for (gguf, hf) in GGUFCheckpoint.layerNames {
                let name = "model.layers.\(layer).\(hf)"
                guard keys.contains(name) else { continue }
                var values = try checkpoint.load(name)
                if architecture == "llama" && GGUFCheckpoint.permutedNames.contains(hf) { values = permuted(values, head: config.headDimension) }
                try add("blk.\(layer).\(gguf)", values: values, vector: gguf == "ffn_gate_inp.weight")
            }
            guard let experts = config.expertCount else { continue }
            for (gguf, matrix) in GGUFCheckpoint.expertNames {
                let parts = try (0..<experts).map { (expert) throws(ModelLoadError) in
                    try checkpoint.load("model.layers.\(layer).block_sparse_moe.experts.\(expert).\(matrix).weight")
                }
                let encoded = try parts.map { try encode("blk.\(layer).\(gguf)", $0, as: type, path: directory) }
                tensors.append(
                    GGUFWriter.Tensor(name: "blk.\(layer).\(gguf)", type: type, shape: [experts] + parts[0].shape, bytes: encoded.flatMap(\.bytes)))
            }
        }
        try GGUFWriter(metadata: metadata, tensors: tensors).write(to: path)
    }

    /// llama.cpp's `general.file_type` for a file whose weights are `type` (its LLAMA_FTYPE numbers).
    private static func fileType(_ type: GGMLType) -> UInt32 {
        switch type {
        case .f32: 0
        case .f16: 1
        case .q4_0: 2
        case .q8_0: 7
        case .q4_K: 15  // llama.cpp names its Q4_K files' type by the Q4_K_M mix
        case .q6_K: 18
        default: 32  // bf16
        }
    }

    /// `values` (a float tensor) as `type`'s bytes.
    private static func encode(_ name: String, _ values: Tensor, as type: GGMLType, path: String) throws(ModelLoadError) -> GGUFWriter.Tensor {
        let count = values.count
        var floats = [Float](repeating: 0, count: count)
        floats.withUnsafeMutableBufferPointer { values.copyFloats(from: 0, count: count, into: $0.baseAddress!) }
        let bytes: [UInt8]
        switch type {
        case .f32: bytes = floats.withUnsafeBytes { Array($0) }
        case .f16: bytes = floats.map(HalfConversion.float16Bits).withUnsafeBytes { Array($0) }
        case .bf16: bytes = floats.map(HalfConversion.bfloat16Bits).withUnsafeBytes { Array($0) }
        default:
            guard case let .blocks(format) = GGUFCheckpoint.types[type] else { preconditionFailure("GGUF export writes no \(type) tensors") }
            let columns = values.shape.last!
            guard columns % format.blockElements == 0 else {
                throw .unsupported(path: path, detail: "\(name): rows of \(columns) values are not whole \(format.blockElements)-value \(type) blocks")
            }
            bytes = floats.withUnsafeBufferPointer { format.quantize($0.baseAddress!, rows: count / columns, columns: columns) }
        }
        return GGUFWriter.Tensor(name: name, type: type, shape: values.shape, bytes: bytes)
    }

    /// The converter's row order for a query or key weight (or bias): each head's rotate-half halves interleaved.
    private static func permuted(_ values: Tensor, head: Int) -> Tensor {
        let rows = values.shape[0]
        let rowBytes = values.byteCount / rows
        let result = Tensor(zeros: values.shape, dtype: values.dtype)
        for row in 0..<rows {
            (result.baseAddress + GGUFCheckpoint.fileRow(row, head: head) * rowBytes).copyMemory(from: values.baseAddress + row * rowBytes, byteCount: rowBytes)
        }
        return result
    }

    /// tokenizer.json (with tokenizer_config.json) as the `tokenizer.ggml.*` keys.
    private static func tokenizerMetadata(_ directory: String) throws -> [(key: String, value: GGUFValue)] {
        func object(_ name: String) throws -> [String: Any]? {
            let path = (directory as NSString).appendingPathComponent(name)
            guard let data = FileManager.default.contents(atPath: path) else { return nil }
            guard let json = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
                throw ModelLoadError.malformed(path: path, detail: "not a JSON object")
            }
            return json
        }
        let path = (directory as NSString).appendingPathComponent("tokenizer.json")
        guard let tokenizer = try object("tokenizer.json") else { throw ModelLoadError.missingFile(path: path, detail: "cannot read it") }
        let config = try object("tokenizer_config.json") ?? [:]
        guard let model = tokenizer["model"] as? [String: Any], let vocabulary = model["vocab"] as? [String: Int], let merges = model["merges"] as? [Any] else {
            throw ModelLoadError.malformed(path: path, detail: "no BPE model with a vocab and merges")
        }
        var ids = vocabulary
        let added = tokenizer["added_tokens"] as? [[String: Any]] ?? []
        for token in added { if let id = token["id"] as? Int, let content = token["content"] as? String { ids[content] = id } }
        let size = (ids.values.max() ?? -1) + 1
        var tokens = (0..<size).map { "[PAD\($0)]" }
        var types = [Int32](repeating: 5, count: size)  // unused
        for (text, id) in ids {
            tokens[id] = text
            types[id] = 1  // normal
        }
        for token in added { if let id = token["id"] as? Int { types[id] = token["special"] as? Bool == true ? 3 : 4 } }
        let pre = try preTokenizerName(tokenizer["pre_tokenizer"] as? [String: Any], path: path)
        var metadata: [(key: String, value: GGUFValue)] = [
            ("tokenizer.ggml.model", .string("gpt2")), ("tokenizer.ggml.pre", .string(pre)),
            ("tokenizer.ggml.tokens", .array(.string, tokens.map { .string($0) })),
            ("tokenizer.ggml.token_type", .array(.int32, types.map { .int32($0) })),
            ("tokenizer.ggml.merges", .array(.string, merges.map { .string(($0 as? String) ?? (($0 as? [String]) ?? []).joined(separator: " ")) })),
        ]
        func named(_ value: Any?) -> String? { (value as? String) ?? ((value as? [String: Any])?["content"] as? String) }
        if let bos = named(config["bos_token"]).flatMap({ ids[$0] }) { metadata.append(("tokenizer.ggml.bos_token_id", .uint32(UInt32(bos)))) }
        if let eos = named(config["eos_token"]).flatMap({ ids[$0] }) { metadata.append(("tokenizer.ggml.eos_token_id", .uint32(UInt32(eos)))) }
        if let addsBOS = config["add_bos_token"] as? Bool { metadata.append(("tokenizer.ggml.add_bos_token", .bool(addsBOS))) }
        if let template = config["chat_template"] as? String { metadata.append(("tokenizer.chat_template", .string(template))) }
        return metadata
    }

    /// llama.cpp's name for the pre-tokenizer of a tokenizer.json.
    private static func preTokenizerName(_ json: [String: Any]?, path: String) throws(ModelLoadError) -> String {
        // What tells pre-tokenizers apart: the types of their steps and the split pattern.
        func signature(_ json: [String: Any]?) -> (types: [String?], pattern: String?) {
            let parts = (json?["pretokenizers"] as? [[String: Any]]) ?? (json.map { [$0] } ?? [])
            return (parts.map { $0["type"] as? String }, parts.lazy.compactMap { ($0["pattern"] as? [String: Any])?["Regex"] as? String }.first)
        }
        let given = signature(json)
        for name in GGUFFile.preTokenizerNames {
            let known = signature(GGUFFile.preTokenizer(name)?.json)
            if given.types == known.types && given.pattern == known.pattern { return name }
        }
        throw .unsupported(path: path, detail: "a pre-tokenizer llama.cpp has no name for (GGUF names gpt-2, llama-bpe and qwen2)")
    }
}
