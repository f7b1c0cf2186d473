import Foundation
import TandemTensor

/// What the engine needs of a model family: one rank's part of a decoder — its tensor-parallel slices of one
/// pipeline stage's layers — that turns a batch of new tokens (or the previous stage's hidden states) into hidden
/// states for the next stage or logits, over a paged KV cache. Each family (Llama and its kin today; Mixtral next)
/// implements it in a file of its own and is listed in `ModelRegistry`.
public protocol CausalLanguageModel: AnyObject {
    /// The checkpoint's config.json.
    var config: ModelConfig { get }
    /// The ranks the weights are split over.
    var group: TensorParallelGroup { get }
    /// The layers (and ends) this rank's pipeline stage holds.
    var part: ModelPart { get }
    /// Bytes of the weights this rank holds.
    var weightBytes: Int { get }
    /// The dtype the checkpoint's weights are kept in (the KV cache's "auto" dtype; float16 for ggml blocks).
    var weightDType: DType { get }
    /// The kv heads this rank stores.
    var keyValueHeadsPerRank: Int { get }
    /// What this rank's MoE layers moved over expert-parallel groups spanning replicas (zero otherwise).
    var expertTraffic: ExpertTraffic { get }
    /// Runs this part's layers over the new tokens of every sequence of `batch`, storing their keys and values in
    /// `cache`: from the tokens on the first stage, from `hidden` (the previous stage's output) on the others.
    ///
    /// - Returns: the hidden states for the next stage, or on the last stage the logits of the sequences that
    ///   want them on group rank `root` (nil on the other ranks).
    func forward(_ batch: ForwardBatch, cache: PagedKVCache, hidden: Tensor?, logitsTo root: Int) throws -> StageOutput
}

extension CausalLanguageModel {
    /// A paged KV cache of `blockCount` blocks of `blockSize` positions for this rank's kv heads.
    ///
    /// - Throws: `GenerationError.cacheUnavailable` when the system refuses the memory.
    public func makeKVCache(blockCount: Int, blockSize: Int, dtype: DType) throws(GenerationError) -> PagedKVCache {
        try PagedKVCache(
            layerCount: part.layers.count, blockCount: blockCount,
            layout: PagedKVLayout(blockSize: blockSize, keyValueHeads: keyValueHeadsPerRank, headDimension: config.headDimension, dtype: dtype))
    }

    /// The whole model's forward pass (a single stage): logits on group rank `root`, nil on the other ranks.
    public func forward(_ batch: ForwardBatch, cache: PagedKVCache, logitsTo root: Int = 0) throws -> Tensor? {
        precondition(part.isWhole, "a pipeline stage (\(part)) runs forward(_:cache:hidden:logitsTo:)")
        guard case let .logits(logits) = try forward(batch, cache: cache, hidden: nil, logitsTo: root) else { preconditionFailure("the whole model returns logits") }
        return logits
    }
}

/// The model families Tandem runs, by config.json's `model_type` (transformers' auto-model mapping).
public enum ModelRegistry {
    /// Loads one rank's part of a checkpoint of this family.
    public typealias Loader = @Sendable (
        _ model: ModelFiles.Opened, _ group: TensorParallelGroup, _ part: ModelPart?, _ experts: ExpertGroups?, _ precision: ComputePrecision,
        _ quantization: WeightQuantization?, _ threads: Int, _ progress: ((Int, Int) -> Void)?
    ) throws -> any CausalLanguageModel

    /// Llama and the families that share its layers (Mistral: a sliding window; Qwen2: q/k/v biases; Mixtral:
    /// Mistral with a sparse mixture-of-experts MLP).
    private static let llama: Loader = { try LlamaModel(files: $0, group: $1, part: $2, experts: $3, precision: $4, quantization: $5, threads: $6, progress: $7) }
    private static let families: [String: Loader] = ["llama": llama, "mistral": llama, "qwen2": llama, "mixtral": llama]

    /// The `model_type`s Tandem runs, sorted.
    public static var supportedTypes: [String] { families.keys.sorted() }

    /// Loads this rank's part of `model` (a checkpoint directory or a GGUF file), choosing the family by its
    /// `model_type`.
    ///
    /// - Parameters:
    ///   - part: the pipeline stage's layers and ends (nil: the whole model).
    ///   - experts: the groups when expert parallelism spans data-parallel replicas (`part.expertPlacement` set).
    ///   - precision: what the linear layers multiply in.
    ///   - quantization: the blocks the linear layers' weights are quantized to as they load (nil: as stored).
    ///   - threads: threads each layer's kernels run on (this rank's share of the cores).
    ///   - progress: called after each decoder layer with (layers loaded, layers of the part).
    /// - Throws: `ModelLoadError` (an unsupported `model_type` names the supported ones).
    public static func load(
        model: String, group: TensorParallelGroup, part: ModelPart? = nil, experts: ExpertGroups? = nil, precision: ComputePrecision = .float32,
        quantization: WeightQuantization? = nil, threads: Int = 1, progress: ((Int, Int) -> Void)? = nil
    ) throws -> any CausalLanguageModel {
        try load(files: ModelFiles.open(model), group: group, part: part, experts: experts, precision: precision, quantization: quantization, threads: threads, progress: progress)
    }

    /// `load(model:…)` for a model already opened (`ModelFiles.open`).
    public static func load(
        files: ModelFiles.Opened, group: TensorParallelGroup, part: ModelPart? = nil, experts: ExpertGroups? = nil, precision: ComputePrecision = .float32,
        quantization: WeightQuantization? = nil, threads: Int = 1, progress: ((Int, Int) -> Void)? = nil
    ) throws -> any CausalLanguageModel {
        // ModelConfig admits only the supported model types.
        try families[files.config.modelType]!(files, group, part, experts, precision, quantization, threads, progress)
    }
}
