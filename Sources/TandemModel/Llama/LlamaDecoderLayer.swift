import TandemComm
import TandemParallel
import TandemTensor

/// One decoder layer: `h += o_proj(attention(rope(qkv_proj(norm(h)))))`, then
/// `h += down_proj(silu(gate) · up)` of `gate_up_proj(norm(h))` — or, in a Mixtral layer, `h += moe(norm(h))`.
final class LlamaDecoderLayer {
    /// The MLP after attention: dense (Llama, Mistral, Qwen2) or a sparse mixture of experts (Mixtral).
    enum FeedForward {
        case dense(gateUp: MergedColumnParallelLinear, down: RowParallelLinear)
        case experts(SparseMoeBlock)
    }

    /// Activations of one forward pass, shared by the layers.
    final class Workspace {
        let normed, qkv, queries, keys, values, attended, projected, gateUp, activated: Tensor
        let attentionScratch: PagedAttention.Scratch

        init(rows: Int, layer: LlamaDecoderLayer, config: ModelConfig) {
            let d = config.headDimension
            let attention = layer.attention
            normed = Tensor(zeros: [rows, config.hiddenSize], dtype: .float32)
            qkv = Tensor(zeros: [rows, attention.outputSizePerRank], dtype: .float32)
            queries = Tensor(zeros: [rows, attention.headsPerRank * d], dtype: .float32)
            keys = Tensor(zeros: [rows, attention.keyValueHeadsPerRank * d], dtype: .float32)
            values = Tensor(zeros: [rows, attention.keyValueHeadsPerRank * d], dtype: .float32)
            attended = Tensor(zeros: [rows, attention.headsPerRank * d], dtype: .float32)
            projected = Tensor(zeros: [rows, config.hiddenSize], dtype: .float32)
            // A MoE layer sizes its experts' buffers by the tokens routed to each.
            let gateUpWidth = if case let .dense(gateUp, _) = layer.feedForward { gateUp.outputSizePerRank } else { 0 }
            gateUp = Tensor(zeros: [rows, gateUpWidth], dtype: .float32)
            activated = Tensor(zeros: [rows, gateUpWidth / 2], dtype: .float32)
            attentionScratch = PagedAttention.Scratch(
                groupSize: attention.headsPerRank / attention.keyValueHeadsPerRank, headDimension: d)
        }
    }

    let inputNorm: Tensor
    let attention: QKVParallelLinear
    let output: RowParallelLinear
    let postAttentionNorm: Tensor
    let feedForward: FeedForward
    private let rotary: RotaryEmbedding
    private let epsilon: Float
    private let headDimension: Int
    private let slidingWindow: Int?
    let weightBytes: Int

    init(
        _ source: WeightSource, prefix: String, config: ModelConfig, group: TensorParallelGroup, expertPlacement: ExpertPlacement?,
        wide: ExpertGroups?
    ) throws(ModelLoadError) {
        let hidden = config.hiddenSize
        let attentionWidth = config.headCount * config.headDimension
        inputNorm = try source.loadFloat32("\(prefix).input_layernorm.weight", shape: [hidden])
        attention = try QKVParallelLinear(
            source, prefix: "\(prefix).self_attn", hiddenSize: hidden, heads: config.headCount, keyValueHeads: config.keyValueHeadCount,
            headDimension: config.headDimension, hasBias: config.qkvBias, group: group)
        output = try RowParallelLinear(
            source, prefix: "\(prefix).self_attn.o_proj", inputSize: attentionWidth, outputSize: hidden,
            hasBias: config.outputProjectionBias, group: group)
        postAttentionNorm = try source.loadFloat32("\(prefix).post_attention_layernorm.weight", shape: [hidden])
        if config.expertCount != nil {
            // transformers 4 names the block block_sparse_moe, transformers 5 mlp.
            let block = source.has("\(prefix).block_sparse_moe.gate.weight") ? "block_sparse_moe" : "mlp"
            feedForward = .experts(try SparseMoeBlock(source, prefix: "\(prefix).\(block)", config: config, group: group, placement: expertPlacement, wide: wide))
        } else {
            feedForward = .dense(
                gateUp: try MergedColumnParallelLinear(
                    source, prefixes: ["\(prefix).mlp.gate_proj", "\(prefix).mlp.up_proj"], inputSize: hidden,
                    outputSizes: [config.intermediateSize, config.intermediateSize], group: group),
                down: try RowParallelLinear(
                    source, prefix: "\(prefix).mlp.down_proj", inputSize: config.intermediateSize, outputSize: hidden, hasBias: false, group: group))
        }
        rotary = RotaryEmbedding(dimension: config.headDimension, theta: config.ropeTheta, scaling: config.ropeScaling)
        epsilon = Float(config.rmsNormEpsilon)
        headDimension = config.headDimension
        slidingWindow = config.slidingWindow
        let feedForwardBytes =
            switch feedForward {
            case let .dense(gateUp, down): gateUp.weightBytes + down.weightBytes
            case let .experts(block): block.weightBytes
            }
        weightBytes = inputNorm.byteCount + postAttentionNorm.byteCount + attention.weightBytes + output.weightBytes + feedForwardBytes
    }

    /// Updates `hidden` (`[rows, hiddenSize]`) in place, storing this layer's keys and values in `cache`.
    func forward(
        _ hidden: Tensor, metadata: AttentionMetadata, cache: PagedKVCache, layerIndex: Int, workspace w: Workspace
    ) throws(CommError) {
        RMSNorm.apply(hidden, weight: inputNorm, epsilon: epsilon, into: w.normed)
        attention.forward(w.normed, into: w.qkv)
        splitHeads(w)
        let (keyCache, valueCache) = (cache.keys(layerIndex), cache.values(layerIndex))
        for (row, position) in metadata.positions.enumerated() {
            let (query, key) = (w.queries.row(row).baseAddress!, w.keys.row(row).baseAddress!)
            rotary.apply(query, heads: attention.headsPerRank, position: position)
            rotary.apply(key, heads: attention.keyValueHeadsPerRank, position: position)
            PagedAttention.store(
                keys: key, values: w.values.row(row).baseAddress!, slot: metadata.slots[row], keyCache: keyCache, valueCache: valueCache,
                layout: cache.layout)
        }
        for sequence in metadata.sequences {
            let rows = sequence.firstRow..<(sequence.firstRow + sequence.count)
            sequence.blockTable.withUnsafeBufferPointer { table in
                PagedAttention.attend(
                    queries: w.queries.rows(rows).baseAddress!, queryStride: w.queries.rowWidth, count: sequence.count,
                    heads: attention.headsPerRank, contextLength: sequence.contextLength, keyCache: keyCache, valueCache: valueCache,
                    layout: cache.layout, blockTable: table, output: w.attended.rows(rows).baseAddress!, outputStride: w.attended.rowWidth,
                    scratch: w.attentionScratch, window: slidingWindow)
            }
        }
        try output.forward(w.attended, into: w.projected)
        add(w.projected, to: hidden)

        RMSNorm.apply(hidden, weight: postAttentionNorm, epsilon: epsilon, into: w.normed)
        switch feedForward {
        case let .dense(gateUp, down):
            gateUp.forward(w.normed, into: w.gateUp)
            Activation.siluAndMultiply(w.gateUp, into: w.activated)
            try down.forward(w.activated, into: w.projected)
        case let .experts(block):
            try block.forward(w.normed, into: w.projected)
        }
        add(w.projected, to: hidden)
    }

    /// Copies each row's `[q | k | v]` into the query, key and value buffers.
    private func splitHeads(_ w: Workspace) {
        let (qWidth, kvWidth) = (w.queries.rowWidth, w.keys.rowWidth)
        for row in 0..<w.qkv.rowCount {
            w.queries.row(row).copy(from: w.qkv.row(row, columns: 0..<qWidth))
            w.keys.row(row).copy(from: w.qkv.row(row, columns: qWidth..<(qWidth + kvWidth)))
            w.values.row(row).copy(from: w.qkv.row(row, columns: (qWidth + kvWidth)..<(qWidth + 2 * kvWidth)))
        }
    }

    private func add(_ delta: Tensor, to hidden: Tensor) {
        precondition(delta.count == hidden.count, "adding \(delta.shape) to \(hidden.shape)")
        let (target, source) = (hidden.floats, delta.floats)
        for index in 0..<hidden.count { target[index] += source[index] }
    }
}
