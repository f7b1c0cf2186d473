import TandemTensor

/// A linear layer whose output features are split over the tensor-parallel group (vLLM's
/// `ColumnParallelLinear` with `gather_output=False`): each rank holds the rows of the weight for its features
/// and produces those features; no communication. The next layer (a `RowParallelLinear`, attention over local
/// heads) consumes the split output as it is.
public class ColumnParallelLinear {
    /// Input features (whole on every rank).
    public let inputSize: Int
    /// This rank's output features.
    public let outputSizePerRank: Int
    /// `[outputSizePerRank, inputSize]`, as the model's precision multiplies it.
    let weight: LinearWeight
    /// `[outputSizePerRank]`, fp32.
    let bias: [Float]?
    /// Bytes of this rank's weight rows and bias.
    var weightBytes: Int { weight.byteCount + (bias?.count ?? 0) * MemoryLayout<Float>.size }

    /// One weight (and bias) per part, each with its rows for this rank, stacked in order.
    init(
        _ source: WeightSource, parts: [(prefix: String, outputSize: Int, rows: Range<Int>)], inputSize: Int, hasBias: Bool
    ) throws(ModelLoadError) {
        self.inputSize = inputSize
        weight = try source.linear(
            parts.map { ("\($0.prefix).weight", [$0.outputSize, inputSize], $0.rows) }, columns: 0..<inputSize,
            name: parts.map { "\($0.prefix).weight" }.joined(separator: " + "))
        outputSizePerRank = weight.outputSize
        if hasBias {
            let stacked = try source.stack(parts.map { ("\($0.prefix).bias", [$0.outputSize], $0.rows) })
            bias = stacked.toDoubles().map { Float($0) }
        } else {
            bias = nil
        }
    }

    /// `output[m, outputSizePerRank] = input[m, inputSize] · weightᵀ + bias`.
    public func forward(_ input: Tensor, into output: Tensor) {
        weight.apply(input, into: output)
        if let bias { addBias(bias, to: output) }
    }

    /// This rank's block of `size` rows split evenly over the group.
    static func evenShare(_ size: Int, of name: String, group: TensorParallelGroup, source: WeightSource) throws(ModelLoadError) -> Range<Int> {
        guard size % group.size == 0 else {
            throw .unsupported(path: source.store.path, detail: "\(name): \(size) features do not split over tensor parallel size \(group.size)")
        }
        return group.share(of: size)
    }
}

/// Several column-parallel projections of the same input in one weight (vLLM's `MergedColumnParallelLinear`;
/// Llama's gate and up projections): each part is split over the group and this rank's slices are stacked,
/// so the output row is `[gate slice | up slice]`.
public final class MergedColumnParallelLinear: ColumnParallelLinear {
    /// `prefixes[i].weight` is `[outputSizes[i], inputSize]`.
    init(_ source: WeightSource, prefixes: [String], inputSize: Int, outputSizes: [Int], group: TensorParallelGroup) throws(ModelLoadError) {
        var parts: [(prefix: String, outputSize: Int, rows: Range<Int>)] = []
        for (prefix, size) in zip(prefixes, outputSizes) {
            parts.append((prefix, size, try Self.evenShare(size, of: prefix, group: group, source: source)))
        }
        try super.init(source, parts: parts, inputSize: inputSize, hasBias: false)
    }
}

/// The query, key and value projections in one weight (vLLM's `QKVParallelLinear`): this rank's query heads,
/// then its kv heads' keys, then their values. With at least as many kv heads as ranks each rank has
/// `kvHeads / tp` of them; with fewer, each kv head is replicated on `tp / kvHeads` consecutive ranks — the
/// ranks whose query heads read it.
public final class QKVParallelLinear: ColumnParallelLinear {
    /// Query heads on this rank.
    public let headsPerRank: Int
    /// Kv heads on this rank.
    public let keyValueHeadsPerRank: Int

    init(
        _ source: WeightSource, prefix: String, hiddenSize: Int, heads: Int, keyValueHeads: Int, headDimension: Int, hasBias: Bool,
        group: TensorParallelGroup
    ) throws(ModelLoadError) {
        let tp = group.size
        guard heads % tp == 0, keyValueHeads % tp == 0 || tp % keyValueHeads == 0 else {
            throw .unsupported(
                path: source.store.path,
                detail: "\(heads) attention heads and \(keyValueHeads) kv heads do not split over tensor parallel size \(tp)")
        }
        headsPerRank = heads / tp
        let firstKV: Int
        if keyValueHeads >= tp {
            keyValueHeadsPerRank = keyValueHeads / tp
            firstKV = group.rank * keyValueHeadsPerRank
        } else {
            keyValueHeadsPerRank = 1
            firstKV = group.rank / (tp / keyValueHeads)
        }
        let queryRows = (group.rank * headsPerRank * headDimension)..<((group.rank + 1) * headsPerRank * headDimension)
        let kvRows = (firstKV * headDimension)..<((firstKV + keyValueHeadsPerRank) * headDimension)
        try super.init(
            source,
            parts: [
                ("\(prefix).q_proj", heads * headDimension, queryRows),
                ("\(prefix).k_proj", keyValueHeads * headDimension, kvRows),
                ("\(prefix).v_proj", keyValueHeads * headDimension, kvRows),
            ],
            inputSize: hiddenSize, hasBias: hasBias)
    }
}

/// Adds `bias` (one value per column) to every row of `output` (`[rows, bias.count]`, fp32).
func addBias(_ bias: [Float], to output: Tensor) {
    precondition(output.rowWidth == bias.count, "a bias of \(bias.count) for rows of \(output.rowWidth)")
    for row in 0..<output.rowCount {
        let target = output.row(row)
        for index in bias.indices { target[index] += bias[index] }
    }
}
