import TandemComm
import TandemTensor

/// A linear layer whose input features are split over the tensor-parallel group (vLLM's `RowParallelLinear`
/// with `input_is_parallel=True`): each rank multiplies its input slice by its columns of the weight, and the
/// partial outputs are summed over the group — the one all-reduce of attention and of the MLP.
public final class RowParallelLinear {
    /// This rank's input features.
    public let inputSizePerRank: Int
    /// Output features (whole on every rank).
    public let outputSize: Int
    /// `[outputSize, inputSizePerRank]`, as the model's precision multiplies it.
    private let weight: LinearWeight
    /// `[outputSize]`, fp32, added once after the sum.
    private let bias: [Float]?
    private let group: TensorParallelGroup
    /// Bytes of this rank's weight slice and the bias (whole on every rank).
    var weightBytes: Int { weight.byteCount + (bias?.count ?? 0) * MemoryLayout<Float>.size }

    init(_ source: WeightSource, prefix: String, inputSize: Int, outputSize: Int, hasBias: Bool, group: TensorParallelGroup) throws(ModelLoadError) {
        let columns = try ColumnParallelLinear.evenShare(inputSize, of: prefix, group: group, source: source)
        weight = try source.linear([("\(prefix).weight", [outputSize, inputSize], 0..<outputSize)], columns: columns, name: "\(prefix).weight")
        bias = hasBias ? try source.load("\(prefix).bias", shape: [outputSize]).toDoubles().map { Float($0) } : nil
        inputSizePerRank = columns.count
        self.outputSize = outputSize
        self.group = group
    }

    /// `output[m, outputSize] = Σ_ranks input[m, inputSizePerRank] · weightᵀ (+ bias)`.
    ///
    /// - Throws: `CommError` when the all-reduce fails.
    public func forward(_ input: Tensor, into output: Tensor) throws(CommError) {
        weight.apply(input, into: output)
        try group.allReduce(output)
        if let bias { addBias(bias, to: output) }
    }
}
