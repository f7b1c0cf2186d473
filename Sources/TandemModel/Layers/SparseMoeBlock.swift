import Foundation
import TandemComm
import TandemParallel
import TandemTensor

/// Mixtral's sparse mixture-of-experts MLP (transformers' `MixtralSparseMoeBlock`): a router scores every expert
/// for each token, the token goes to its `expertsPerToken` most probable experts (softmax probabilities,
/// renormalised to sum to 1 over those chosen; ties to the lower index), and its output is their weighted sum,
/// each expert a SiLU-gated MLP `w2(silu(w1 x) · w3 x)`.
///
/// Without expert parallelism every expert is tensor-parallel, as vLLM's default: w1 and w3 split by output
/// rows, w2 by input columns. With it (`placement` set), each rank holds whole experts — those `placement`
/// gives it — and computes them for every token routed to them. Either way the router is replicated, so every
/// rank routes each token alike (the tokens themselves are the same on every rank of the group), each rank adds
/// its products, weighted, and one all-reduce per layer sums them over the group: with tokens on every rank
/// already, nothing needs dispatching (the all-to-all form pays off only where ranks hold different tokens).
final class SparseMoeBlock {
    let expertCount: Int
    let expertsPerToken: Int
    /// `[expertCount, hiddenSize]`, fp32, whole on every rank.
    private let router: Tensor
    /// Per expert held here: `[w1; w3]` (this rank's rows, or whole with expert parallelism); nil for an expert
    /// placed on another rank.
    private let gateUp: [MergedColumnParallelLinear?]
    /// Per expert held here: w2 (this rank's columns, or whole).
    private let down: [RowParallelLinear?]
    /// The experts this rank computes.
    let localExperts: [Int]
    private let group: TensorParallelGroup
    let weightBytes: Int

    /// Loads `prefix`.gate.weight and `prefix`.experts.E.{w1,w3,w2}.weight: this rank's slice of every expert,
    /// or with `placement` the whole of this rank's experts (the others' only checked for shape).
    init(_ source: WeightSource, prefix: String, config: ModelConfig, group: TensorParallelGroup, placement: ExpertPlacement?) throws(ModelLoadError) {
        let (hidden, intermediate) = (config.hiddenSize, config.intermediateSize)
        expertCount = config.expertCount!
        expertsPerToken = config.expertsPerToken
        router = try source.loadFloat32("\(prefix).gate.weight", shape: [expertCount, hidden])
        localExperts = placement?.experts(of: group.rank, ranks: group.size, experts: expertCount) ?? Array(0..<expertCount)
        // A whole expert is an expert "split" over a group of one.
        let expertGroup = placement == nil ? group : .single
        var gateUp: [MergedColumnParallelLinear?] = []
        var down: [RowParallelLinear?] = []
        for expert in 0..<expertCount {
            let name = "\(prefix).experts.\(expert)"
            guard localExperts.contains(expert) else {
                for (key, shape) in [("w1", [intermediate, hidden]), ("w3", [intermediate, hidden]), ("w2", [hidden, intermediate])] {
                    try source.claim("\(name).\(key).weight", shape: shape)
                }
                (gateUp, down) = (gateUp + [nil], down + [nil])
                continue
            }
            gateUp.append(
                try MergedColumnParallelLinear(
                    source, prefixes: ["\(name).w1", "\(name).w3"], inputSize: hidden, outputSizes: [intermediate, intermediate], group: expertGroup))
            down.append(try RowParallelLinear(source, prefix: "\(name).w2", inputSize: intermediate, outputSize: hidden, hasBias: false, group: expertGroup))
        }
        self.gateUp = gateUp
        self.down = down
        self.group = group
        weightBytes = router.byteCount + gateUp.reduce(0) { $0 + ($1?.weight.byteCount ?? 0) } + down.reduce(0) { $0 + ($1?.weightBytes ?? 0) }
    }

    /// The routing of each of `rows` tokens: its experts and their weights, from the router's logits.
    func route(_ logits: Tensor) -> [[(expert: Int, weight: Float)]] {
        (0..<logits.shape[0]).map { row in
            let values = logits.row(row)
            let largest = values.max()!
            let exponentials = values.map { Double(exp($0 - largest)) }
            let total = exponentials.reduce(0, +)
            let probabilities = exponentials.map { Float($0 / total) }
            // The k most probable, ties to the lower index.
            let chosen = probabilities.indices.sorted { probabilities[$0] > probabilities[$1] || (probabilities[$0] == probabilities[$1] && $0 < $1) }
                .prefix(expertsPerToken)
            let sum = chosen.reduce(Float(0)) { $0 + probabilities[$1] }
            return chosen.map { ($0, probabilities[$0] / sum) }
        }
    }

    /// `output[rows, hiddenSize]` = the experts' weighted sum for each row of `input` (`[rows, hiddenSize]`).
    ///
    /// - Throws: `CommError` when the all-reduce fails.
    func forward(_ input: Tensor, into output: Tensor) throws(CommError) {
        let rows = input.shape[0]
        let logits = Tensor(zeros: [rows, expertCount], dtype: .float32)
        Matmul.linear(input, weight: router, into: logits)
        var assigned = [[(row: Int, weight: Float)]](repeating: [], count: expertCount)
        for (row, choices) in route(logits).enumerated() {
            for choice in choices { assigned[choice.expert].append((row, choice.weight)) }
        }
        let outputFloats = output.floats
        for index in 0..<output.count { outputFloats[index] = 0 }
        let width = input.shape[1]
        for (expert, tokens) in assigned.enumerated() where !tokens.isEmpty {
            guard let gateUp = gateUp[expert], let down = down[expert] else { continue }
            let gathered = Tensor(zeros: [tokens.count, width], dtype: .float32)
            for (index, token) in tokens.enumerated() { gathered.row(index).copy(from: input.row(token.row)) }
            let gateUpOutput = Tensor(zeros: [tokens.count, gateUp.outputSizePerRank], dtype: .float32)
            gateUp.forward(gathered, into: gateUpOutput)
            let activated = Tensor(zeros: [tokens.count, gateUp.outputSizePerRank / 2], dtype: .float32)
            Activation.siluAndMultiply(gateUpOutput, into: activated)
            let partial = Tensor(zeros: [tokens.count, width], dtype: .float32)
            down.partial(activated, into: partial)
            for (index, token) in tokens.enumerated() {
                let (target, source) = (output.row(token.row), partial.row(index))
                for column in 0..<width { target[column] += token.weight * source[column] }
            }
        }
        try group.allReduce(output)
    }
}
