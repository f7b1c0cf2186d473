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
    /// One expert's weights on this rank: `[w1; w3]` rows and w2 columns (this rank's share, or whole).
    private struct Expert {
        let gateUp: LinearWeight
        let down: LinearWeight
    }

    let expertCount: Int
    let expertsPerToken: Int
    /// `[expertCount, hiddenSize]`, fp32, whole on every rank.
    private let router: Tensor
    /// Per expert: its weights here, or nil for an expert placed on another rank.
    private let experts: [Expert?]
    /// The experts this rank computes.
    let localExperts: [Int]
    private let group: TensorParallelGroup
    let weightBytes: Int

    /// Loads the router (`prefix`.gate.weight) and the experts — transformers 4's layout
    /// (`prefix`.experts.E.{w1,w3,w2}.weight, what the hub holds) or transformers 5's fused one
    /// (`prefix`.experts.gate_up_proj `[E, 2·I, H]`, gate rows first, and `prefix`.experts.down_proj `[E, H, I]`),
    /// whichever the checkpoint has: this rank's slice of every expert, or with `placement` the whole of this
    /// rank's experts (the others' only checked for shape).
    init(_ source: WeightSource, prefix: String, config: ModelConfig, group: TensorParallelGroup, placement: ExpertPlacement?) throws(ModelLoadError) {
        let (hidden, intermediate) = (config.hiddenSize, config.intermediateSize)
        expertCount = config.expertCount!
        expertsPerToken = config.expertsPerToken
        router = try source.loadFloat32("\(prefix).gate.weight", shape: [expertCount, hidden])
        localExperts = placement?.experts(of: group.rank, ranks: group.size, experts: expertCount) ?? Array(0..<expertCount)
        // Without expert parallelism, this rank's share of each expert's intermediate features.
        let share = placement == nil ? try ColumnParallelLinear.evenShare(intermediate, of: "\(prefix).experts", group: group, source: source) : 0..<intermediate
        let fused = source.checkpoint.keys.contains("\(prefix).experts.gate_up_proj")
        let (gateUpShape, downShape) = ([expertCount, 2 * intermediate, hidden], [expertCount, hidden, intermediate])
        var experts: [Expert?] = []
        for expert in 0..<expertCount {
            let name = "\(prefix).experts.\(expert)"
            let local = localExperts.contains(expert)
            if fused {
                guard local else {
                    try source.claim("\(prefix).experts.gate_up_proj", shape: gateUpShape)
                    try source.claim("\(prefix).experts.down_proj", shape: downShape)
                    experts.append(nil)
                    continue
                }
                let gateUp = try source.expertMatrix(
                    "\(prefix).experts.gate_up_proj", shape: gateUpShape, expert: expert, rows: [share, (intermediate + share.lowerBound)..<(intermediate + share.upperBound)],
                    columns: 0..<hidden)
                let down = try source.expertMatrix("\(prefix).experts.down_proj", shape: downShape, expert: expert, rows: [0..<hidden], columns: share)
                experts.append(Expert(gateUp: source.linear(gateUp), down: source.linear(down)))
            } else {
                let shapes = [("w1", [intermediate, hidden]), ("w3", [intermediate, hidden]), ("w2", [hidden, intermediate])]
                guard local else {
                    for (key, shape) in shapes { try source.claim("\(name).\(key).weight", shape: shape) }
                    experts.append(nil)
                    continue
                }
                let gateUp = try source.stack([("\(name).w1.weight", [intermediate, hidden], share), ("\(name).w3.weight", [intermediate, hidden], share)])
                let down = try source.load("\(name).w2.weight", shape: [hidden, intermediate], slice: (1, share))
                experts.append(Expert(gateUp: source.linear(gateUp), down: source.linear(down)))
            }
        }
        self.experts = experts
        self.group = group
        weightBytes = router.byteCount + experts.reduce(0) { $0 + ($1.map { $0.gateUp.byteCount + $0.down.byteCount } ?? 0) }
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
            guard let weights = experts[expert] else { continue }
            let gathered = Tensor(zeros: [tokens.count, width], dtype: .float32)
            for (index, token) in tokens.enumerated() { gathered.row(index).copy(from: input.row(token.row)) }
            let gateUpOutput = Tensor(zeros: [tokens.count, weights.gateUp.outputSize], dtype: .float32)
            weights.gateUp.apply(gathered, into: gateUpOutput)
            let activated = Tensor(zeros: [tokens.count, weights.gateUp.outputSize / 2], dtype: .float32)
            Activation.siluAndMultiply(gateUpOutput, into: activated)
            // This rank's share of the expert's output (summed over the group by the all-reduce below).
            let partial = Tensor(zeros: [tokens.count, width], dtype: .float32)
            weights.down.apply(activated, into: partial)
            for (index, token) in tokens.enumerated() {
                let (target, source) = (output.row(token.row), partial.row(index))
                for column in 0..<width { target[column] += token.weight * source[column] }
            }
        }
        try group.allReduce(output)
    }
}
