import Foundation
import TandemTokenizer
import TandemTensor

/// The shape of a checkpoint `tandem make-model` writes.
public struct ModelPreset: Sendable, Equatable {
    public var name: String
    /// `llama`, `qwen2` (q, k and v biases) or `mixtral` (a sparse mixture-of-experts MLP).
    public var modelType = "llama"
    /// Experts per MoE layer and experts per token (`mixtral`; 0 for a dense MLP).
    public var expertCount = 0
    public var expertsPerToken = 0
    /// Write the experts in transformers 5's fused layout (`mlp.gate.weight`, `mlp.experts.gate_up_proj`
    /// `[E, 2·I, H]`, `mlp.experts.down_proj` `[E, H, I]`) instead of `block_sparse_moe.experts.E.w1/w2/w3`.
    public var fusedExperts = false
    public var hiddenSize: Int
    public var intermediateSize: Int
    public var layerCount: Int
    public var headCount: Int
    public var keyValueHeadCount: Int
    /// Tokenizer size = model vocabulary.
    public var vocabularySize: Int
    public var maxPositions: Int
    public var tieWordEmbeddings: Bool

    public init(
        name: String, hiddenSize: Int, intermediateSize: Int, layerCount: Int, headCount: Int, keyValueHeadCount: Int,
        vocabularySize: Int, maxPositions: Int, tieWordEmbeddings: Bool
    ) {
        self.name = name
        self.hiddenSize = hiddenSize
        self.intermediateSize = intermediateSize
        self.layerCount = layerCount
        self.headCount = headCount
        self.keyValueHeadCount = keyValueHeadCount
        self.vocabularySize = vocabularySize
        self.maxPositions = maxPositions
        self.tieWordEmbeddings = tieWordEmbeddings
    }

    /// For tests and `make run`: 2 layers, 4 query heads over 2 kv heads (so tp 4 replicates kv heads),
    /// 512 tokens, ~0.14 M parameters.
    public static let tiny = ModelPreset(
        name: "tiny", hiddenSize: 64, intermediateSize: 128, layerCount: 2, headCount: 4, keyValueHeadCount: 2, vocabularySize: 512,
        maxPositions: 512, tieWordEmbeddings: false)
    /// For decode-speed measurements: 12 layers of width 1024, 16 query heads over 8 kv heads, 4096 tokens,
    /// ~148 M parameters (~296 MB in bf16).
    public static let small = ModelPreset(
        name: "small", hiddenSize: 1024, intermediateSize: 2816, layerCount: 12, headCount: 16, keyValueHeadCount: 8,
        vocabularySize: 4096, maxPositions: 2048, tieWordEmbeddings: false)

    /// Mixtral's shape at test size: tiny with 8 experts of the same width per layer, 2 per token.
    public static let tinyMoE = ModelPreset(
        name: "tiny-moe", hiddenSize: 64, intermediateSize: 128, layerCount: 2, headCount: 4, keyValueHeadCount: 2, vocabularySize: 512,
        maxPositions: 512, tieWordEmbeddings: false)
        .mixtral(experts: 8, perToken: 2)
    /// Mixtral's shape for measurements: small's attention with 8 experts of a quarter of small's MLP width per
    /// layer, 2 per token (~245 M parameters, ~70 M active per token).
    public static let smallMoE = ModelPreset(
        name: "small-moe", hiddenSize: 1024, intermediateSize: 704, layerCount: 12, headCount: 16, keyValueHeadCount: 8,
        vocabularySize: 4096, maxPositions: 2048, tieWordEmbeddings: false)
        .mixtral(experts: 8, perToken: 2)

    /// For measurements at a size people run: Llama 3.2 1B's layer shape (width 2048, 32 query heads over 8 kv
    /// heads, MLP 8192) with 17 layers, so that with the 4,096-token vocabulary it holds ~1.05 B parameters
    /// (~2.1 GB in bf16).
    public static let oneB = ModelPreset(
        name: "1b", hiddenSize: 2048, intermediateSize: 8192, layerCount: 17, headCount: 32, keyValueHeadCount: 8,
        vocabularySize: 4096, maxPositions: 4096, tieWordEmbeddings: false)

    public static let all = [tiny, small, tinyMoE, smallMoE, oneB]

    /// This shape with Mixtral's MoE MLP: `experts` per layer, `perToken` of them for each token.
    public func mixtral(experts: Int, perToken: Int) -> ModelPreset {
        var preset = self
        (preset.modelType, preset.expertCount, preset.expertsPerToken) = ("mixtral", experts, perToken)
        return preset
    }

    /// Parameters, counting the head separately unless tied.
    public var parameterCount: Int {
        let headDimension = hiddenSize / headCount
        let attention = hiddenSize * headCount * headDimension * 2 + hiddenSize * keyValueHeadCount * headDimension * 2
        let biases = modelType == "qwen2" ? (headCount + 2 * keyValueHeadCount) * headDimension : 0
        let mlp = expertCount > 0 ? expertCount * (3 * hiddenSize * intermediateSize + hiddenSize) : 3 * hiddenSize * intermediateSize
        let layer = attention + biases + mlp + 2 * hiddenSize
        return layerCount * layer + vocabularySize * hiddenSize * (tieWordEmbeddings ? 1 : 2) + hiddenSize
    }
}

/// Writes a deterministic random Llama checkpoint in the Hugging Face layout: config.json,
/// generation_config.json, tokenizer.json (a byte-level BPE vocabulary trained on `TrainingCorpus`),
/// tokenizer_config.json and model.safetensors. The same preset, dtype and seed give the same bytes.
public enum ModelWriter {
    /// English prose and code from the text make-model's tokenizers are trained on (for benchmarks that need
    /// text every such tokenizer encodes well).
    public static var sampleText: String { TrainingCorpus.sample }

    /// - Throws: file-system errors, naming the path.
    public static func write(_ preset: ModelPreset, dtype: DType, seed: UInt64, to directory: String) throws {
        precondition(dtype.isFloatingPoint, "checkpoint weights are floating point")
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        func path(_ name: String) -> String { (directory as NSString).appendingPathComponent(name) }
        func writeJSON(_ object: Any, _ name: String) throws {
            try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .prettyPrinted]).write(to: URL(fileURLWithPath: path(name)))
        }

        let corpus = TrainingCorpus.texts(inventedWords: preset.vocabularySize * 12)
        try writeJSON(try BytePairTrainer.tokenizerJSON(corpus: corpus, size: preset.vocabularySize), "tokenizer.json")
        let (bos, eos) = (preset.vocabularySize - 2, preset.vocabularySize - 1)
        try writeJSON(
            ["bos_token": BytePairTrainer.beginOfText, "eos_token": BytePairTrainer.endOfText, "add_bos_token": true,
             "model_max_length": preset.maxPositions, "tokenizer_class": "PreTrainedTokenizerFast"],
            "tokenizer_config.json")
        let headDimension = preset.hiddenSize / preset.headCount
        let architecture = ["qwen2": "Qwen2ForCausalLM", "mixtral": "MixtralForCausalLM"][preset.modelType] ?? "LlamaForCausalLM"
        let experts: [String: Any] =
            preset.expertCount > 0
            ? ["num_local_experts": preset.expertCount, "num_experts_per_tok": preset.expertsPerToken, "router_jitter_noise": 0.0] : [:]
        try writeJSON(
            experts.merging([
                "architectures": [architecture], "model_type": preset.modelType, "hidden_size": preset.hiddenSize,
                "intermediate_size": preset.intermediateSize, "num_hidden_layers": preset.layerCount,
                "num_attention_heads": preset.headCount, "num_key_value_heads": preset.keyValueHeadCount, "head_dim": headDimension,
                "vocab_size": preset.vocabularySize, "max_position_embeddings": preset.maxPositions, "rms_norm_eps": 1e-5,
                "rope_theta": 500_000.0, "tie_word_embeddings": preset.tieWordEmbeddings, "bos_token_id": bos, "eos_token_id": eos,
                "hidden_act": "silu", "torch_dtype": dtype.description, "tandem_preset": preset.name,
            ]) { $1 }, "config.json")
        try writeJSON(["bos_token_id": bos, "eos_token_id": eos], "generation_config.json")

        var entries: [(SafetensorsWriter.Entry, scale: Double, offset: Double)] = []
        func add(_ name: String, _ shape: [Int], scale: Double, offset: Double = 0) {
            entries.append((SafetensorsWriter.Entry(name: name, dtype: dtype, shape: shape), scale, offset))
        }
        let (h, i, v) = (preset.hiddenSize, preset.intermediateSize, preset.vocabularySize)
        let (q, kv) = (preset.headCount * headDimension, preset.keyValueHeadCount * headDimension)
        add("model.embed_tokens.weight", [v, h], scale: 1)
        for layer in 0..<preset.layerCount {
            let prefix = "model.layers.\(layer)"
            // Norm weights near 1; projections scaled by 1/√fan-in so activations keep their size with depth.
            add("\(prefix).input_layernorm.weight", [h], scale: 0.1, offset: 1)
            add("\(prefix).self_attn.q_proj.weight", [q, h], scale: 1 / Double(h).squareRoot())
            add("\(prefix).self_attn.k_proj.weight", [kv, h], scale: 1 / Double(h).squareRoot())
            add("\(prefix).self_attn.v_proj.weight", [kv, h], scale: 1 / Double(h).squareRoot())
            if preset.modelType == "qwen2" {
                add("\(prefix).self_attn.q_proj.bias", [q], scale: 0.1)
                add("\(prefix).self_attn.k_proj.bias", [kv], scale: 0.1)
                add("\(prefix).self_attn.v_proj.bias", [kv], scale: 0.1)
            }
            add("\(prefix).self_attn.o_proj.weight", [h, q], scale: 1 / Double(q).squareRoot())
            add("\(prefix).post_attention_layernorm.weight", [h], scale: 0.1, offset: 1)
            if preset.expertCount > 0 && preset.fusedExperts {
                let e = preset.expertCount
                add("\(prefix).mlp.gate.weight", [e, h], scale: 3 / Double(h).squareRoot())
                add("\(prefix).mlp.experts.gate_up_proj", [e, 2 * i, h], scale: 1 / Double(h).squareRoot())
                add("\(prefix).mlp.experts.down_proj", [e, h, i], scale: 1 / Double(i).squareRoot())
            } else if preset.expertCount > 0 {
                // A router with a clear spread, so each token's top experts are well apart.
                add("\(prefix).block_sparse_moe.gate.weight", [preset.expertCount, h], scale: 3 / Double(h).squareRoot())
                for expert in 0..<preset.expertCount {
                    let name = "\(prefix).block_sparse_moe.experts.\(expert)"
                    add("\(name).w1.weight", [i, h], scale: 1 / Double(h).squareRoot())
                    add("\(name).w2.weight", [h, i], scale: 1 / Double(i).squareRoot())
                    add("\(name).w3.weight", [i, h], scale: 1 / Double(h).squareRoot())
                }
            } else {
                add("\(prefix).mlp.gate_proj.weight", [i, h], scale: 1 / Double(h).squareRoot())
                add("\(prefix).mlp.up_proj.weight", [i, h], scale: 1 / Double(h).squareRoot())
                add("\(prefix).mlp.down_proj.weight", [h, i], scale: 1 / Double(i).squareRoot())
            }
        }
        add("model.norm.weight", [h], scale: 0.1, offset: 1)
        // A wide spread of logits, so greedy choices are clear.
        if !preset.tieWordEmbeddings { add("lm_head.weight", [v, h], scale: 3 / Double(h).squareRoot()) }

        var generator = SeededGenerator(seed: seed)
        let parameters = Dictionary(uniqueKeysWithValues: entries.map { ($0.0.name, ($0.scale, $0.offset)) })
        try SafetensorsWriter.write(entries.map(\.0), to: path("model.safetensors")) { entry, buffer in
            let (scale, offset) = parameters[entry.name]!
            let count = entry.shape.reduce(1, *)
            for index in 0..<count {
                let value = Float(offset + scale * normal(&generator))
                switch entry.dtype {
                case .float32: buffer.storeBytes(of: value, toByteOffset: index * 4, as: Float.self)
                case .bfloat16: buffer.storeBytes(of: HalfConversion.bfloat16Bits(from: value), toByteOffset: index * 2, as: UInt16.self)
                case .float16: buffer.storeBytes(of: HalfConversion.float16Bits(from: value), toByteOffset: index * 2, as: UInt16.self)
                case .int8, .int32, .int64: preconditionFailure("checkpoint weights are floating point")
                }
            }
        }
    }

    /// A standard normal sample (Box–Muller).
    private static func normal(_ generator: inout SeededGenerator) -> Double {
        let u1 = Double.random(in: Double.ulpOfOne..<1, using: &generator)
        let u2 = Double.random(in: 0..<1, using: &generator)
        return (-2 * log(u1)).squareRoot() * cos(2 * .pi * u2)
    }
}
