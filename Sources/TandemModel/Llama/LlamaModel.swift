import TandemComm
import TandemTensor

/// A Llama-family decoder (Llama, Mistral, Qwen2) on one tensor-parallel rank. It reads like the single-device
/// model; the parallel layers hold this rank's slices and do the communication.
public final class LlamaModel {
    /// The checkpoint's config.json.
    public let config: ModelConfig
    /// The ranks the weights are split over.
    public let group: TensorParallelGroup
    private let embedding: VocabParallelEmbedding
    private let layers: [LlamaDecoderLayer]
    private let norm: Tensor
    private let lmHead: ParallelLMHead
    /// Bytes of the weights this rank holds (its slices plus the replicated norms).
    public let weightBytes: Int

    /// Loads this rank's slices of the checkpoint in `directory`.
    ///
    /// - Parameters:
    ///   - progress: called after each decoder layer with (layers loaded, layer count).
    /// - Throws: `ModelLoadError` for a missing, unexpected or wrongly shaped tensor, a bad config, or a
    ///   tensor-parallel size that does not split the model (the error lists the sizes that do).
    public init(directory: String, group: TensorParallelGroup, progress: ((Int, Int) -> Void)? = nil) throws(ModelLoadError) {
        let config = try ModelConfig(directory: directory)
        try config.checkTensorParallel(group.size, path: directory)
        let source = WeightSource(try Checkpoint(directory: directory))
        self.config = config
        self.group = group
        embedding = try VocabParallelEmbedding(
            source, key: "model.embed_tokens.weight", vocabularySize: config.vocabularySize, hiddenSize: config.hiddenSize, group: group)
        var layers: [LlamaDecoderLayer] = []
        for index in 0..<config.layerCount {
            layers.append(try LlamaDecoderLayer(source, prefix: "model.layers.\(index)", config: config, group: group))
            progress?(index + 1, config.layerCount)
        }
        self.layers = layers
        norm = try source.loadFloat32("model.norm.weight", shape: [config.hiddenSize])
        let headWeight =
            config.tieWordEmbeddings
            ? embedding.weight
            : try source.load(
                "lm_head.weight", shape: [config.vocabularySize, config.hiddenSize], slice: (0, embedding.tokenRange))
        lmHead = ParallelLMHead(weight: headWeight, vocabularySize: config.vocabularySize, group: group)
        let tied = config.tieWordEmbeddings
        try source.checkAllUsed { key in key.hasSuffix("rotary_emb.inv_freq") || (tied && key == "lm_head.weight") }
        weightBytes = embedding.weight.byteCount + (tied ? 0 : headWeight.byteCount) + norm.byteCount
            + layers.reduce(0) { $0 + $1.weightBytes }
    }

    /// An empty cache for one sequence of up to `capacity` positions.
    public func makeCache(capacity: Int) -> SequenceCache {
        SequenceCache(
            layerCount: config.layerCount, keyValueHeads: layers[0].attention.keyValueHeadsPerRank,
            headDimension: config.headDimension, capacity: capacity)
    }

    /// Runs the new tokens of each sequence of `batch` through the model, appending their keys and values to
    /// the sequence's cache (a whole prompt for prefill, one token for decode; sequences may mix).
    ///
    /// - Returns: logits `[batch.count, vocabularySize]` of each sequence's last new token, the same on every rank.
    /// - Throws: `GenerationError` for a token outside the vocabulary or a full cache, `CommError` when a
    ///   collective fails.
    public func forward(_ batch: [(tokens: [Int], cache: SequenceCache)]) throws -> Tensor {
        let spans = batch.map { LlamaDecoderLayer.Span(count: $0.tokens.count, cache: $0.cache) }
        for span in spans where span.cache.length + span.count > span.cache.capacity {
            throw GenerationError.cacheFull(positions: span.cache.length + span.count, capacity: span.cache.capacity)
        }
        let rows = spans.reduce(0) { $0 + $1.count }
        let hidden = Tensor(zeros: [rows, config.hiddenSize], dtype: .float32)
        try embedding.forward(batch.flatMap(\.tokens), into: hidden)
        let workspace = LlamaDecoderLayer.Workspace(rows: rows, layer: layers[0], config: config, longest: spans.map { $0.cache.length + $0.count }.max() ?? 0)
        for (index, layer) in layers.enumerated() {
            try layer.forward(hidden, spans: spans, layerIndex: index, workspace: workspace)
        }
        // The last row of each sequence, normalised, to logits.
        let last = Tensor(zeros: [batch.count, config.hiddenSize], dtype: .float32)
        var row = 0
        let source = hidden.baseAddress.assumingMemoryBound(to: Float.self)
        let target = last.baseAddress.assumingMemoryBound(to: Float.self)
        for (index, span) in spans.enumerated() {
            row += span.count
            (target + index * config.hiddenSize).update(from: source + (row - 1) * config.hiddenSize, count: config.hiddenSize)
        }
        RMSNorm.apply(last, weight: norm, epsilon: Float(config.rmsNormEpsilon), into: last)
        return try lmHead.forward(last)
    }
}
