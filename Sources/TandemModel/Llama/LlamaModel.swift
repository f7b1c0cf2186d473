import TandemComm
import TandemTensor

/// A Llama-family decoder (Llama, Mistral, Qwen2) on one tensor-parallel rank of one pipeline stage. It reads
/// like the single-device model; the parallel layers hold this rank's slices and do the communication, and a
/// stage holds only its layers (the embedding on the first, the final norm and LM head on the last).
public final class LlamaModel: CausalLanguageModel {
    /// The checkpoint's config.json.
    public let config: ModelConfig
    /// The ranks the weights are split over.
    public let group: TensorParallelGroup
    /// The layers and ends this stage holds.
    public let part: ModelPart
    private let embedding: VocabParallelEmbedding?
    private let layers: [LlamaDecoderLayer]
    private let norm: Tensor?
    private let lmHead: ParallelLMHead?
    /// Bytes of the weights this rank holds (its slices plus the replicated norms).
    public let weightBytes: Int
    /// The dtype the checkpoint's weights are kept in.
    public let weightDType: DType

    /// Loads this rank's slices of `part` of `model`: a checkpoint directory or a GGUF file (`ModelFiles`).
    ///
    /// - Parameters:
    ///   - part: the pipeline stage's layers and ends (nil: the whole model).
    ///   - experts: the groups when expert parallelism spans data-parallel replicas (`part.expertPlacement` set).
    ///   - quantization: the blocks every linear layer's weight is quantized to as it loads (nil: as stored).
    ///   - progress: called after each decoder layer with (layers loaded, layers of the part).
    /// - Throws: `ModelLoadError` for a missing, unexpected or wrongly shaped tensor, a bad config, or a
    ///   tensor-parallel size that does not split the model (the error lists the sizes that do).
    public convenience init(
        model directory: String, group: TensorParallelGroup, part: ModelPart? = nil, experts: ExpertGroups? = nil, precision: ComputePrecision = .float32,
        quantization: WeightQuantization? = nil, threads: Int = 1, progress: ((Int, Int) -> Void)? = nil
    ) throws(ModelLoadError) {
        try self.init(
            files: ModelFiles.open(directory), group: group, part: part, experts: experts, precision: precision, quantization: quantization, threads: threads,
            progress: progress)
    }

    /// `init(model:…)` from a model already opened (`ModelFiles.open`).
    public init(
        files: ModelFiles.Opened, group: TensorParallelGroup, part: ModelPart? = nil, experts: ExpertGroups? = nil, precision: ComputePrecision = .float32,
        quantization: WeightQuantization? = nil, threads: Int = 1, progress: ((Int, Int) -> Void)? = nil
    ) throws(ModelLoadError) {
        let (directory, store, config) = (files.path, files.weights, files.config)
        try config.checkTensorParallel(group.size, path: directory)
        guard precision != .bfloat16 || ComputePrecision.bfloat16Available else {
            throw .unsupported(path: directory, detail: "compute dtype bfloat16 on this CPU: it needs AVX-512 BF16; use float32")
        }
        if let quantization, precision != .float32 {
            throw .unsupported(path: directory, detail: "\(quantization.rawValue) weights multiply in their own integer kernel; compute dtype \(precision.rawValue) does not apply to them")
        }
        let part = part ?? .whole(layerCount: config.layerCount)
        guard part.layers.upperBound <= config.layerCount else {
            throw .malformed(path: directory, detail: "a pipeline stage holds layers \(part.layers) but the model has \(config.layerCount)")
        }
        if part.expertPlacement != nil { try config.checkExpertParallel(path: directory) }
        let source = WeightSource(store, precision: precision, quantization: quantization, threads: threads)
        self.config = config
        self.group = group
        self.part = part
        let tied = config.tieWordEmbeddings
        let embeddingFormat = try store.format(of: "model.embed_tokens.weight")
        // The first stage looks tokens up; the last stage of a tied model multiplies by the same table.
        let table =
            part.embedsTokens || (tied && part.computesLogits)
            ? try VocabParallelEmbedding(
                source, key: "model.embed_tokens.weight", vocabularySize: config.vocabularySize, hiddenSize: config.hiddenSize, group: group)
            : nil
        embedding = part.embedsTokens ? table : nil
        var layers: [LlamaDecoderLayer] = []
        for index in part.layers {
            layers.append(
                try LlamaDecoderLayer(source, prefix: "model.layers.\(index)", config: config, group: group, expertPlacement: part.expertPlacement, wide: experts))
            progress?(layers.count, part.layers.count)
        }
        self.layers = layers
        var headBytes = 0
        if part.computesLogits {
            norm = try source.loadFloat32("model.norm.weight", shape: [config.hiddenSize])
            let tokenRange = group.share(of: config.vocabularySize)
            // A tied head shares the embedding's table (float, or a GGUF file's blocks); an untied head loads as any
            // linear layer.
            let headWeight =
                tied
                ? table!.tiedHead(threads: threads)
                : try source.linear([("lm_head.weight", [config.vocabularySize, config.hiddenSize], tokenRange)], columns: 0..<config.hiddenSize, name: "lm_head.weight")
            lmHead = ParallelLMHead(weight: headWeight, vocabularySize: config.vocabularySize, group: group)
            headBytes = norm!.byteCount + (tied && part.embedsTokens ? 0 : headWeight.byteCount)
        } else {
            (norm, lmHead) = (nil, nil)
        }
        try source.checkAllUsed { key in
            key.hasSuffix("rotary_emb.inv_freq") || (tied && key == "lm_head.weight") || Self.belongsToAnotherStage(key, part: part, config: config)
        }
        // Blocks have no dtype; their KV cache is kept in float16, as llama.cpp keeps it.
        weightDType = if case let .dense(dtype) = embeddingFormat { dtype } else { .float16 }
        weightBytes = (embedding?.byteCount ?? 0) + headBytes + layers.reduce(0) { $0 + $1.weightBytes }
    }

    /// Whether `key` is a tensor of the model that another pipeline stage loads (and checks).
    private static func belongsToAnotherStage(_ key: String, part: ModelPart, config: ModelConfig) -> Bool {
        if key == "model.embed_tokens.weight" { return !part.embedsTokens }
        if key == "model.norm.weight" || key == "lm_head.weight" { return !part.computesLogits }
        let prefix = "model.layers."
        guard key.hasPrefix(prefix), let index = Int(key.dropFirst(prefix.count).prefix { $0 != "." }) else { return false }
        return (0..<config.layerCount).contains(index) && !part.layers.contains(index)
    }

    public var expertTraffic: ExpertTraffic {
        layers.reduce(ExpertTraffic()) { sum, layer in
            guard case let .experts(block) = layer.feedForward else { return sum }
            return sum + block.traffic
        }
    }

    /// The kv heads each rank stores (the model's kv heads split over the group, or replicated when fewer).
    public var keyValueHeadsPerRank: Int { layers[0].attention.keyValueHeadsPerRank }

    /// Runs the new tokens of every sequence of `batch` through this stage's layers, storing their keys and
    /// values in `cache` at the positions their block tables give (a prompt or a chunk of it for prefill, one
    /// token for decode; sequences may mix).
    ///
    /// - Parameters:
    ///   - hidden: on stages after the first, the previous stage's output `[tokens, hiddenSize]` (updated in
    ///     place and handed on); nil on the first stage, which embeds the tokens.
    ///   - root: the group rank that receives the logits.
    /// - Returns: on the last stage, logits `[batch.logitRows, vocabularySize]` of the last new token of each
    ///   sequence that wants them, in order, on `root` (nil on the other ranks); on the others, the hidden states.
    /// - Throws: `GenerationError` for a token outside the vocabulary, a batch that does not fit the cache or
    ///   the context, or hidden states of the wrong shape; `CommError` when a collective fails.
    public func forward(_ batch: ForwardBatch, cache: PagedKVCache, hidden input: Tensor?, logitsTo root: Int) throws -> StageOutput {
        let metadata = try AttentionMetadata(batch, cache: cache, maxPositions: config.maxPositions)
        let rows = batch.tokens.count
        let hidden: Tensor
        if let embedding {
            hidden = Tensor(zeros: [rows, config.hiddenSize], dtype: .float32)
            try embedding.forward(batch.tokens, into: hidden)
        } else {
            guard let input, input.shape == [rows, config.hiddenSize], input.dtype == .float32 else {
                throw GenerationError.invalidRequest(
                    "stage holding \(part) needs the previous stage's float32 [\(rows), \(config.hiddenSize)] hidden states, got "
                        + (input.map { "\($0.dtype)\($0.shape)" } ?? "none"))
            }
            hidden = input
        }
        let workspace = LlamaDecoderLayer.Workspace(rows: rows, layer: layers[0], config: config)
        for (index, layer) in layers.enumerated() {
            try layer.forward(hidden, metadata: metadata, cache: cache, layerIndex: index, workspace: workspace)
        }
        guard let norm, let lmHead else { return .hidden(hidden) }
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
        return .logits(try lmHead.forward(last, gatherTo: root))
    }
}
