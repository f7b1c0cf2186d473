import Foundation
import TandemTensor

/// The architecture of a Llama-family checkpoint, from its Hugging Face `config.json` (`llama`, `mistral`,
/// `qwen2`, `mixtral`), with the defaults `transformers` applies to absent fields.
public struct ModelConfig: Sendable, Equatable {
    public let modelType: String
    public let hiddenSize: Int
    public let intermediateSize: Int
    public let layerCount: Int
    public let headCount: Int
    public let keyValueHeadCount: Int
    public let headDimension: Int
    public let vocabularySize: Int
    public let maxPositions: Int
    /// Mistral's sliding window: a position attends to itself and the `slidingWindow − 1` before it (nil: to
    /// every earlier position).
    public let slidingWindow: Int?
    public let rmsNormEpsilon: Double
    public let ropeTheta: Double
    public let ropeScaling: RopeScaling
    public let tieWordEmbeddings: Bool
    /// Whether the q, k and v projections have biases (Qwen2 always; Llama/Mistral when `attention_bias`).
    public let qkvBias: Bool
    /// Whether o_proj has a bias: Llama's `attention_bias` covers it, Qwen2 biases q, k and v only.
    public let outputProjectionBias: Bool
    /// Mixtral's experts per MoE layer (`num_local_experts`); nil for a dense MLP.
    public let expertCount: Int?
    /// Experts each token is routed to (`num_experts_per_tok`); 0 for a dense MLP.
    public let expertsPerToken: Int
    public let bosTokenID: Int?
    /// Every end-of-sequence id (`eos_token_id` may be a list).
    public let eosTokenIDs: [Int]

    /// The model types Tandem runs.
    public static var supportedTypes: [String] { ModelRegistry.supportedTypes }

    /// Reads `config.json` from a checkpoint directory.
    ///
    /// - Throws: `ModelLoadError.missingFile`, `.malformed` naming the field, `.unsupported` for another
    ///   model type or RoPE scaling.
    public init(directory: String) throws(ModelLoadError) {
        let path = (directory as NSString).appendingPathComponent("config.json")
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw .missingFile(path: path, detail: "cannot read it (\(error.localizedDescription))")
        }
        guard let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw .malformed(path: path, detail: "not a JSON object")
        }
        try self.init(json: json, path: path)
    }

    /// Parses a decoded `config.json` object; `path` names it in errors.
    public init(json: [String: Any], path: String) throws(ModelLoadError) {
        let fields = Fields(json: json, path: path)
        modelType = try fields.string("model_type")
        guard Self.supportedTypes.contains(modelType) else {
            throw .unsupported(path: path, detail: "model_type '\(modelType)'; Tandem runs \(Self.supportedTypes.joined(separator: ", "))")
        }
        hiddenSize = try fields.positive("hidden_size")
        intermediateSize = try fields.positive("intermediate_size")
        layerCount = try fields.positive("num_hidden_layers")
        headCount = try fields.positive("num_attention_heads")
        keyValueHeadCount = try fields.positive("num_key_value_heads", default: headCount)
        guard headCount % keyValueHeadCount == 0 else {
            throw .malformed(path: path, detail: "num_attention_heads \(headCount) is not a multiple of num_key_value_heads \(keyValueHeadCount)")
        }
        if json["head_dim"] == nil || json["head_dim"] is NSNull {
            guard hiddenSize % headCount == 0 else {
                throw .malformed(path: path, detail: "hidden_size \(hiddenSize) is not a multiple of num_attention_heads \(headCount) and head_dim is not given")
            }
            headDimension = hiddenSize / headCount
        } else {
            headDimension = try fields.positive("head_dim")
        }
        vocabularySize = try fields.positive("vocab_size")
        // The MLP's activation is SiLU (transformers' default for these families); another would run as SiLU
        // and give wrong tokens without a word, so it is refused.
        if let activation = json["hidden_act"], !(activation is NSNull) {
            guard let name = activation as? String else { throw .malformed(path: path, detail: "hidden_act must be a string, got \(activation)") }
            guard ["silu", "swish"].contains(name) else {
                throw .unsupported(path: path, detail: "hidden_act '\(name)'; Tandem's MLP computes silu")
            }
        }
        maxPositions = try fields.positive("max_position_embeddings", default: 4096)
        // Mistral attends over a sliding window when config.json gives one (transformers' MistralAttention);
        // Qwen2 only with use_sliding_window, and then from layer max_window_layers on, which Tandem does not
        // implement, so it is refused rather than run as full attention.
        let window = json["sliding_window"] is NSNull ? nil : json["sliding_window"]
        if modelType == "qwen2" {
            if try fields.flag("use_sliding_window", default: false) {
                throw .unsupported(path: path, detail: "use_sliding_window for qwen2 (sliding attention from layer max_window_layers on)")
            }
            slidingWindow = nil
        } else if window != nil, ["mistral", "mixtral"].contains(modelType) ? true : try fields.flag("use_sliding_window", default: false) {
            slidingWindow = try fields.positive("sliding_window")
        } else {
            slidingWindow = nil
        }
        rmsNormEpsilon = try fields.number("rms_norm_eps", default: 1e-6)
        let ropeParameters = json["rope_parameters"] as? [String: Any]
        if let theta = ropeParameters?["rope_theta"] {
            guard let value = (theta as? NSNumber)?.doubleValue, value > 0, value.isFinite else {
                throw .malformed(path: path, detail: "rope_parameters.rope_theta must be a positive number")
            }
            ropeTheta = value
        } else {
            ropeTheta = try fields.number("rope_theta", default: 10_000)
        }
        ropeScaling = try Self.scaling(json["rope_scaling"] ?? ropeParameters.map { $0 as Any }, path: path)
        tieWordEmbeddings = try fields.flag("tie_word_embeddings", default: false)
        qkvBias = modelType == "qwen2" ? true : try fields.flag("attention_bias", default: false)
        outputProjectionBias = modelType == "qwen2" ? false : qkvBias
        if modelType == "mixtral" {
            // transformers' MixtralConfig defaults; router_jitter_noise only perturbs training.
            let experts = try fields.positive("num_local_experts", default: 8)
            expertsPerToken = try fields.positive("num_experts_per_tok", default: 2)
            guard expertsPerToken <= experts else {
                throw .malformed(path: path, detail: "num_experts_per_tok \(expertsPerToken) is more than num_local_experts \(experts)")
            }
            expertCount = experts
        } else {
            (expertCount, expertsPerToken) = (nil, 0)
        }
        bosTokenID = try fields.tokenIDs("bos_token_id").first
        eosTokenIDs = try fields.tokenIDs("eos_token_id")
    }

    /// The tensor-parallel sizes up to `limit` this model splits evenly: query heads, intermediate size and
    /// (where kv heads are not replicated) kv heads divisible by tp.
    public func validTensorParallelSizes(upTo limit: Int = 64) -> [Int] {
        (1...max(limit, 1)).filter { tp in
            headCount % tp == 0 && intermediateSize % tp == 0
                && (keyValueHeadCount % tp == 0 || tp % keyValueHeadCount == 0)
        }
    }

    /// Checks that this model has experts to place, for expert parallelism.
    ///
    /// - Throws: `ModelLoadError.unsupported` for a dense model.
    public func checkExpertParallel(path: String) throws(ModelLoadError) {
        guard expertCount == nil else { return }
        throw .unsupported(
            path: path, detail: "expert parallelism: it is a dense model (model_type \(modelType), no num_local_experts); drop --enable-expert-parallel")
    }

    /// Checks, before any rank loads, that every linear layer's rows fit `quantization`'s blocks on each of
    /// `tensorParallelSize` ranks (the loader checks each slice too): the hidden width the column-parallel layers
    /// read, o_proj's and the MLP's row-parallel shares, and the experts' down projections unless `expertsWhole`.
    /// Rows that are not whole blocks of a k-quant but are of 32 values are stored as q8_0 (`fitting(columns:)`).
    ///
    /// - Returns: the weights every decoder layer stores as q8_0 instead, each as "WEIGHTS (COLUMNS values a
    ///   row)"; empty when every row is whole blocks.
    /// - Throws: `ModelLoadError.unsupported` naming the first layer whose rows no block fits (of layer 0; every
    ///   layer has its shapes).
    @discardableResult
    public func checkQuantization(_ quantization: WeightQuantization, tensorParallelSize: Int, expertsWhole: Bool, path: String) throws(ModelLoadError) -> [String] {
        let moe = expertCount != nil
        // Each kind of row: the layer an error names, the weights that share its width, and the width on one rank.
        let inputs = [
            ("self_attn.q_proj.weight", moe ? "q/k/v_proj and the experts' w1/w3" : "q/k/v_proj and gate/up_proj", hiddenSize),
            ("self_attn.o_proj.weight", "o_proj", headCount * headDimension / tensorParallelSize),
            moe ? ("block_sparse_moe.experts.0.w2.weight", "the experts' w2", expertsWhole ? intermediateSize : intermediateSize / tensorParallelSize)
                : ("mlp.down_proj.weight", "down_proj", intermediateSize / tensorParallelSize),
        ]
        var fallbacks: [String] = []
        for (name, weights, columns) in inputs {
            guard let stored = quantization.fitting(columns: columns) else {
                throw .cutBlocks("model.layers.0.\(name)", quantization: quantization, columns: columns, path: path)
            }
            if stored != quantization { fallbacks.append("\(weights) (\(columns) values a row)") }
        }
        return fallbacks
    }

    /// Checks that `tensorParallelSize` splits this model.
    ///
    /// - Throws: `ModelLoadError.unsupported` listing the sizes that would work.
    public func checkTensorParallel(_ tensorParallelSize: Int, path: String) throws(ModelLoadError) {
        guard !validTensorParallelSizes(upTo: max(tensorParallelSize, 8)).contains(tensorParallelSize) else { return }
        throw .unsupported(
            path: path,
            detail: "tensor parallel size \(tensorParallelSize) does not split \(headCount) attention heads, \(keyValueHeadCount) kv heads "
                + "and intermediate size \(intermediateSize) evenly; valid sizes: "
                + validTensorParallelSizes(upTo: max(tensorParallelSize, 8)).map(String.init).joined(separator: ", "))
    }

    private static func scaling(_ value: Any?, path: String) throws(ModelLoadError) -> RopeScaling {
        guard let scaling = value as? [String: Any] else { return .none }
        let kind = (scaling["rope_type"] as? String) ?? (scaling["type"] as? String) ?? "default"
        func number(_ key: String) throws(ModelLoadError) -> Double {
            guard let value = (scaling[key] as? NSNumber)?.doubleValue, value > 0, value.isFinite else {
                throw .malformed(path: path, detail: "rope_scaling of type \(kind) needs a positive \(key)")
            }
            return value
        }
        switch kind {
        case "default": return .none
        case "linear": return .linear(factor: try number("factor"))
        case "llama3":
            return .llama3(
                factor: try number("factor"), lowFrequencyFactor: try number("low_freq_factor"),
                highFrequencyFactor: try number("high_freq_factor"),
                originalMaxPositions: try Fields(json: scaling, path: path).positive("original_max_position_embeddings"))
        default:
            throw .unsupported(path: path, detail: "rope_scaling type '\(kind)'; Tandem supports default, linear and llama3")
        }
    }
}

/// Typed reads of config.json fields, with errors naming the field.
private struct Fields {
    let json: [String: Any]
    let path: String
    /// The largest size or count a field may give (2³¹ − 1): beyond it, products of sizes would overflow.
    static let largestSize = Int(Int32.max)

    func string(_ key: String) throws(ModelLoadError) -> String {
        guard let value = json[key] as? String else { throw .malformed(path: path, detail: "\(key) is missing or not a string") }
        return value
    }

    func positive(_ key: String, default fallback: Int? = nil) throws(ModelLoadError) -> Int {
        guard let raw = json[key], !(raw is NSNull) else {
            if let fallback { return fallback }
            throw .malformed(path: path, detail: "\(key) is missing")
        }
        guard let value = JSONInteger.exact(raw), (1...Self.largestSize).contains(value) else {
            throw .malformed(path: path, detail: "\(key) must be an integer in 1...\(Self.largestSize), got \(raw)")
        }
        return value
    }

    func number(_ key: String, default fallback: Double) throws(ModelLoadError) -> Double {
        guard let raw = json[key], !(raw is NSNull) else { return fallback }
        guard let number = raw as? NSNumber, String(cString: number.objCType) != "c", number.doubleValue > 0, number.doubleValue.isFinite else {
            throw .malformed(path: path, detail: "\(key) must be a positive number, got \(raw)")
        }
        return number.doubleValue
    }

    func flag(_ key: String, default fallback: Bool) throws(ModelLoadError) -> Bool {
        guard let raw = json[key], !(raw is NSNull) else { return fallback }
        guard let value = raw as? Bool else { throw .malformed(path: path, detail: "\(key) must be true or false, got \(raw)") }
        return value
    }

    /// A token id or a list of them; absent or null → empty.
    func tokenIDs(_ key: String) throws(ModelLoadError) -> [Int] {
        guard let raw = json[key], !(raw is NSNull) else { return [] }
        if let list = raw as? [Any] {
            let ids = list.compactMap(JSONInteger.exact)
            guard ids.count == list.count, ids.allSatisfy({ $0 >= 0 }) else {
                throw .malformed(path: path, detail: "\(key) must be a token id or a list of them, got \(raw)")
            }
            return ids
        }
        guard let id = JSONInteger.exact(raw), id >= 0 else {
            throw .malformed(path: path, detail: "\(key) must be a token id or a list of them, got \(raw)")
        }
        return [id]
    }
}
