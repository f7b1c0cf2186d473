import Foundation
import TandemTensor

/// What the engine needs of a model family: one rank's part of a decoder that turns a batch of new tokens into
/// logits over a paged KV cache. Each family (Llama and its kin today; Mixtral next) implements it in a file of
/// its own and is listed in `ModelRegistry`.
public protocol CausalLanguageModel: AnyObject {
    /// The checkpoint's config.json.
    var config: ModelConfig { get }
    /// The ranks the weights are split over.
    var group: TensorParallelGroup { get }
    /// Bytes of the weights this rank holds.
    var weightBytes: Int { get }
    /// The dtype the checkpoint's weights are kept in (the KV cache's "auto" dtype).
    var weightDType: DType { get }
    /// The kv heads this rank stores.
    var keyValueHeadsPerRank: Int { get }
    /// Runs the new tokens of every sequence of `batch`, storing their keys and values in `cache`; logits of the
    /// sequences that want them on group rank `root`, nil on the other ranks.
    func forward(_ batch: ForwardBatch, cache: PagedKVCache, logitsTo root: Int) throws -> Tensor?
}

extension CausalLanguageModel {
    /// A paged KV cache of `blockCount` blocks of `blockSize` positions for this rank's kv heads.
    ///
    /// - Throws: `GenerationError.cacheUnavailable` when the system refuses the memory.
    public func makeKVCache(blockCount: Int, blockSize: Int, dtype: DType) throws(GenerationError) -> PagedKVCache {
        try PagedKVCache(
            layerCount: config.layerCount, blockCount: blockCount,
            layout: PagedKVLayout(blockSize: blockSize, keyValueHeads: keyValueHeadsPerRank, headDimension: config.headDimension, dtype: dtype))
    }

    /// `forward` with the logits on group rank 0.
    public func forward(_ batch: ForwardBatch, cache: PagedKVCache) throws -> Tensor? {
        try forward(batch, cache: cache, logitsTo: 0)
    }
}

/// The model families Tandem runs, by config.json's `model_type` (transformers' auto-model mapping).
public enum ModelRegistry {
    /// Loads one rank's part of a checkpoint of this family.
    public typealias Loader = @Sendable (
        _ directory: String, _ group: TensorParallelGroup, _ precision: ComputePrecision, _ threads: Int, _ progress: ((Int, Int) -> Void)?
    ) throws -> any CausalLanguageModel

    /// Llama and the families that share its layers (Mistral: a sliding window; Qwen2: q/k/v biases).
    private static let llama: Loader = { try LlamaModel(directory: $0, group: $1, precision: $2, threads: $3, progress: $4) }
    private static let families: [String: Loader] = ["llama": llama, "mistral": llama, "qwen2": llama]

    /// The `model_type`s Tandem runs, sorted.
    public static var supportedTypes: [String] { families.keys.sorted() }

    /// Loads this rank's part of the checkpoint in `directory`, choosing the family by its `model_type`.
    ///
    /// - Parameters:
    ///   - precision: what the linear layers multiply in.
    ///   - threads: threads each layer's kernels run on (this rank's share of the cores).
    ///   - progress: called after each decoder layer with (layers loaded, layer count).
    /// - Throws: `ModelLoadError` (an unsupported `model_type` names the supported ones).
    public static func load(
        directory: String, group: TensorParallelGroup, precision: ComputePrecision = .float32, threads: Int = 1,
        progress: ((Int, Int) -> Void)? = nil
    ) throws -> any CausalLanguageModel {
        let config = try ModelConfig(directory: directory)
        return try families[config.modelType]!(directory, group, precision, threads, progress)
    }
}
