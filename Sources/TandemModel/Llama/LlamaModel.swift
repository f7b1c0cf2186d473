import TandemComm
import TandemTensor

/// A Llama-family decoder (Llama, Mistral, Qwen2) on one tensor-parallel rank. It reads like the single-device
/// model; the parallel layers hold this rank's slices and do the communication.
public final class LlamaModel: CausalLanguageModel {
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
    public init(
        directory: String, group: TensorParallelGroup, precision: ComputePrecision = .float32, threads: Int = 1,
        progress: ((Int, Int) -> Void)? = nil
    ) throws(ModelLoadError) {
        let config = try ModelConfig(directory: directory)
        try config.checkTensorParallel(group.size, path: directory)
        guard precision != .bfloat16 || ComputePrecision.bfloat16Available else {
            throw .unsupported(path: directory, detail: "compute dtype bfloat16 on this CPU: it needs AVX-512 BF16; use float32")
        }
        let source = WeightSource(try Checkpoint(directory: directory), precision: precision, threads: threads)
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
        // A tied head shares the embedding's table, which the lookup reads as it is: it stays on the fp32 path.
        let headWeight =
            config.tieWordEmbeddings
            ? LinearWeight(embedding.weight, precision: .float32, threads: threads)
            : source.linear(
                try source.load("lm_head.weight", shape: [config.vocabularySize, config.hiddenSize], slice: (0, embedding.tokenRange)))
        lmHead = ParallelLMHead(weight: headWeight, vocabularySize: config.vocabularySize, group: group)
        let tied = config.tieWordEmbeddings
        try source.checkAllUsed { key in key.hasSuffix("rotary_emb.inv_freq") || (tied && key == "lm_head.weight") }
        weightBytes = embedding.weight.byteCount + (tied ? 0 : headWeight.byteCount) + norm.byteCount
            + layers.reduce(0) { $0 + $1.weightBytes }
    }

    /// The dtype the checkpoint's weights are kept in.
    public var weightDType: DType { embedding.weight.dtype }

    /// The kv heads each rank stores (the model's kv heads split over the group, or replicated when fewer).
    public var keyValueHeadsPerRank: Int { layers[0].attention.keyValueHeadsPerRank }

    /// Runs the new tokens of every sequence of `batch` through the model, storing their keys and values in
    /// `cache` at the positions their block tables give (a prompt or a chunk of it for prefill, one token for
    /// decode; sequences may mix).
    ///
    /// - Parameter root: the group rank that receives the logits.
    /// - Returns: on `root`, logits `[batch.logitRows, vocabularySize]` of the last new token of each sequence
    ///   that wants them, in order; nil on the other ranks.
    /// - Throws: `GenerationError` for a token outside the vocabulary or a batch that does not fit the cache or
    ///   the context, `CommError` when a collective fails.
    public func forward(_ batch: ForwardBatch, cache: PagedKVCache, logitsTo root: Int) throws -> Tensor? {
        let metadata = try AttentionMetadata(batch, cache: cache, maxPositions: config.maxPositions)
        let rows = batch.tokens.count
        let hidden = Tensor(zeros: [rows, config.hiddenSize], dtype: .float32)
        try embedding.forward(batch.tokens, into: hidden)
        let workspace = LlamaDecoderLayer.Workspace(rows: rows, layer: layers[0], config: config)
        for (index, layer) in layers.enumerated() {
            try layer.forward(hidden, metadata: metadata, cache: cache, layerIndex: index, workspace: workspace)
        }
        // The last new row of each sequence that wants logits, normalised, to logits.
        let last = Tensor(zeros: [batch.logitRows, config.hiddenSize], dtype: .float32)
        var (row, wanted) = (0, 0)
        for sequence in batch.sequences {
            row += sequence.tokenCount
            guard sequence.wantsLogits else { continue }
            last.row(wanted).copy(from: hidden.row(row - 1))
            wanted += 1
        }
        RMSNorm.apply(last, weight: norm, epsilon: Float(config.rmsNormEpsilon), into: last)
        return try lmHead.forward(last, gatherTo: root)
    }
}
