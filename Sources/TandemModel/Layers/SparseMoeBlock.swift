import Foundation
import TandemComm
import TandemParallel
import TandemTensor

/// Mixtral's sparse mixture-of-experts MLP (transformers' `MixtralSparseMoeBlock`): a router scores every expert
/// for each token, the token goes to its `expertsPerToken` most probable experts (softmax probabilities,
/// renormalised to sum to 1 over those chosen; ties to the lower index), and its output is their weighted sum,
/// each expert a SiLU-gated MLP `w2(silu(w1 x) · w3 x)`.
///
/// Three ways to run it over ranks:
/// - Without expert parallelism every expert is tensor-parallel, as vLLM's default: w1 and w3 split by output
///   rows, w2 by input columns.
/// - With it (`placement` set) within one replica, each rank of the tp group holds whole experts — those
///   `placement` gives it — and computes them for every token routed to them. The tokens are the same on every
///   rank of the group and the router is replicated, so every rank routes each token alike; each rank adds its
///   products, weighted, and one all-reduce per layer sums them: nothing needs dispatching.
/// - With it across data-parallel replicas (`wide` set), the experts are placed over the stage's dp × tp ranks,
///   whose replicas hold different tokens: the layer dispatches them as `ExpertDispatch` says (all-to-all(v) of
///   the routed pairs, or all-gather + reduce-scatter over the replicas) and combines the results.
final class SparseMoeBlock {
    /// One expert's weights on this rank: `[w1; w3]` rows and w2 columns (this rank's share, or whole).
    private struct Expert {
        let gateUp: LinearWeight
        let down: LinearWeight
    }

    /// Which tokens each expert takes, with their weights.
    private typealias Assignment = [[(row: Int, weight: Float)]]

    let expertCount: Int
    let expertsPerToken: Int
    /// `[expertCount, hiddenSize]`, fp32, whole on every rank.
    private let router: Tensor
    /// Per expert: its weights here, or nil for an expert placed on another rank.
    private let experts: [Expert?]
    /// The experts this rank computes.
    let localExperts: [Int]
    /// With `wide`: the rank of `wide.expert` holding each expert.
    private let owners: [Int]
    private let group: TensorParallelGroup
    private let wide: ExpertGroups?
    let weightBytes: Int
    /// What this layer moved over the expert-parallel groups (with `wide`).
    private(set) var traffic = ExpertTraffic()

    /// Loads the router (`prefix`.gate.weight) and the experts — transformers 4's layout
    /// (`prefix`.experts.E.{w1,w3,w2}.weight, what the hub holds) or transformers 5's fused one
    /// (`prefix`.experts.gate_up_proj `[E, 2·I, H]`, gate rows first, and `prefix`.experts.down_proj `[E, H, I]`),
    /// whichever the checkpoint has: this rank's slice of every expert, or with `placement` the whole of this
    /// rank's experts (the others' only checked for shape).
    ///
    /// - Parameter wide: the groups when the experts span data-parallel replicas (`placement` must be set), placed
    ///   over `wide.expert`; nil: over `group`.
    init(
        _ source: WeightSource, prefix: String, config: ModelConfig, group: TensorParallelGroup, placement: ExpertPlacement?, wide: ExpertGroups?
    ) throws(ModelLoadError) {
        precondition(wide == nil || placement != nil, "experts spread over replicas need a placement")
        let (hidden, intermediate) = (config.hiddenSize, config.intermediateSize)
        expertCount = config.expertCount!
        expertsPerToken = config.expertsPerToken
        router = try source.loadFloat32("\(prefix).gate.weight", shape: [expertCount, hidden])
        let (placeRank, placeRanks) = wide.map { ($0.expert.rank, $0.expert.worldSize) } ?? (group.rank, group.size)
        localExperts = placement?.experts(of: placeRank, ranks: placeRanks, experts: expertCount) ?? Array(0..<expertCount)
        var owners = [Int](repeating: 0, count: expertCount)
        if let placement {
            for rank in 0..<placeRanks { for expert in placement.experts(of: rank, ranks: placeRanks, experts: expertCount) { owners[expert] = rank } }
        }
        self.owners = owners
        self.wide = wide
        // Without expert parallelism, this rank's share of each expert's intermediate features.
        let share = placement == nil ? try ColumnParallelLinear.evenShare(intermediate, of: "\(prefix).experts", group: group, source: source) : 0..<intermediate
        let fused = source.has("\(prefix).experts.gate_up_proj")
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
                experts.append(
                    Expert(
                        gateUp: try source.linear(gateUp, name: "\(prefix).experts.gate_up_proj[\(expert)]"),
                        down: try source.linear(down, name: "\(prefix).experts.down_proj[\(expert)]")))
            } else {
                let shapes = [("w1", [intermediate, hidden]), ("w3", [intermediate, hidden]), ("w2", [hidden, intermediate])]
                guard local else {
                    for (key, shape) in shapes { try source.claim("\(name).\(key).weight", shape: shape) }
                    experts.append(nil)
                    continue
                }
                let gateUp = try source.linear(
                    [("\(name).w1.weight", [intermediate, hidden], share), ("\(name).w3.weight", [intermediate, hidden], share)], columns: 0..<hidden,
                    name: "\(name).w1/w3.weight")
                let down = try source.linear([("\(name).w2.weight", [hidden, intermediate], 0..<hidden)], columns: share, name: "\(name).w2.weight")
                experts.append(Expert(gateUp: gateUp, down: down))
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

    /// `output[rows, hiddenSize]` = the experts' weighted sum for each row of `input` (`[rows, hiddenSize]`; any
    /// number of rows, none included: with `wide` every rank of the stage must call it, with its replica's rows).
    ///
    /// - Throws: `CommError` when a collective fails.
    func forward(_ input: Tensor, into output: Tensor) throws(CommError) {
        guard let wide else {
            let assigned = assign(route(routerLogits(input)))
            clear(output)
            addExperts(assigned, input: input, into: output)
            return try group.allReduce(output)
        }
        switch wide.dispatch {
        case .allToAll: try forwardDispatched(input, into: output, over: wide)
        case .allGather: try forwardGathered(input, into: output, over: wide)
        }
    }

    /// All-to-all(v): this tp rank routes its share of the rows, sends each (row, expert) pair with the expert's id
    /// to the rank holding the expert, computes the pairs it receives, sends the results back and adds them,
    /// weighted; an all-gather over tp gives every tp rank all the rows.
    private func forwardDispatched(_ input: Tensor, into output: Tensor, over wide: ExpertGroups) throws(CommError) {
        let (rows, width) = (input.shape[0], input.shape[1])
        let (ep, ranks) = (wide.expert, wide.expert.worldSize)
        let share = group.share(of: rows)
        let mine = Tensor(zeros: [share.count, width], dtype: .float32)
        mine.rows(0..<share.count).copy(from: input.rows(share))
        // The pairs for each rank, in rank order: (row of `mine`, expert, weight).
        var pairs = [[(row: Int, expert: Int, weight: Float)]](repeating: [], count: ranks)
        for (row, choices) in route(routerLogits(mine)).enumerated() {
            for choice in choices { pairs[owners[choice.expert]].append((row, choice.expert, choice.weight)) }
        }
        let sendSizes = pairs.map(\.count)
        let counts = Tensor(zeros: [ranks], dtype: .int32)
        let countsIn = Tensor(zeros: [ranks], dtype: .int32)
        let outgoing = counts.baseAddress.assumingMemoryBound(to: Int32.self)
        for (rank, size) in sendSizes.enumerated() { outgoing[rank] = Int32(size) }
        try measure { () throws(CommError) in try ep.allToAll(counts, into: countsIn) }
        let incoming = countsIn.baseAddress.assumingMemoryBound(to: Int32.self)
        let receiveSizes = (0..<ranks).map { Int(incoming[$0]) }
        // Dispatch: each pair's hidden state, its expert's id in one more column.
        let sent = Tensor(zeros: [sendSizes.reduce(0, +), width + 1], dtype: .float32)
        for (index, pair) in pairs.joined().enumerated() {
            sent.row(index, columns: 0..<width).copy(from: mine.row(pair.row))
            sent.row(index)[width] = Float(pair.expert)
        }
        let received = Tensor(zeros: [receiveSizes.reduce(0, +), width + 1], dtype: .float32)
        try measure { () throws(CommError) in try ep.allToAllV(sent, sendSizes: sendSizes, into: received, receiveSizes: receiveSizes) }
        var assigned = Assignment(repeating: [], count: expertCount)
        for index in 0..<received.shape[0] {
            let expert = Int(received.row(index)[width])
            // Every rank places the experts alike (the same config from rank 0); another answer is a bug.
            precondition((0..<expertCount).contains(expert) && experts[expert] != nil, "expert \(expert) dispatched to rank \(ep.rank), which does not hold it")
            assigned[expert].append((index, 1))
        }
        let results = Tensor(zeros: [received.shape[0], width], dtype: .float32)
        addExperts(assigned, input: received, into: results)
        // Combine: the results go back the way their pairs came.
        let returned = Tensor(zeros: [sent.shape[0], width], dtype: .float32)
        try measure { () throws(CommError) in try ep.allToAllV(results, sendSizes: receiveSizes, into: returned, receiveSizes: sendSizes) }
        let combined = group.size == 1 ? output : Tensor(zeros: [share.count, width], dtype: .float32)
        clear(combined)
        for (index, pair) in pairs.joined().enumerated() {
            let (target, source) = (combined.row(pair.row), returned.row(index))
            for column in 0..<width { target[column] += pair.weight * source[column] }
        }
        if let tensor = group.group {
            let all = try measure { () throws(CommError) in try tensor.allGatherV(combined, sizes: group.shareSizes(of: rows)) }
            output.rows(0..<rows).copy(from: all.rows(0..<rows))
        }
        let offRank = sendSizes.reduce(0, +) - sendSizes[ep.rank]
        let served = receiveSizes.reduce(0, +) - receiveSizes[ep.rank]
        traffic.routedTokens += share.count
        traffic.routedPairs += sendSizes.reduce(0, +)
        traffic.offRankPairs += offRank
        // Sent by this rank: its pairs out (dispatch) and the results of others' pairs back (combine).
        traffic.hiddenBytes += (offRank + served) * width * 4
        traffic.metadataBytes += (offRank + ranks - 1) * 4
    }

    /// All-gather + reduce-scatter over the replicas (the ranks of this tp index): every replica's rows come to
    /// every rank, each computes its experts for all of them, the reduce-scatter sums the replicas' ranks' products
    /// for each replica's rows and hands them back, and an all-reduce over tp adds the tp ranks' experts.
    private func forwardGathered(_ input: Tensor, into output: Tensor, over wide: ExpertGroups) throws(CommError) {
        let (rows, width) = (input.shape[0], input.shape[1])
        let replicas = wide.replicas
        let count = Tensor(zeros: [1], dtype: .int32)
        count.baseAddress.assumingMemoryBound(to: Int32.self)[0] = Int32(rows)
        let counts = try measure { () throws(CommError) in try replicas.allGather(count) }
        let sizes = (0..<replicas.worldSize).map { Int(counts.baseAddress.assumingMemoryBound(to: Int32.self)[$0]) }
        let all = try measure { () throws(CommError) in try replicas.allGatherV(input, sizes: sizes) }
        let routes = route(routerLogits(all))
        let partial = Tensor(zeros: [all.shape[0], width], dtype: .float32)
        addExperts(assign(routes), input: all, into: partial)
        let summed = try measure { () throws(CommError) in try replicas.reduceScatterV(partial, sizes: sizes) }
        output.rows(0..<rows).copy(from: summed.rows(0..<rows))
        try group.allReduce(output)
        let others = all.shape[0] - rows
        // Received in the gather, sent in the reduce-scatter: every other replica's rows, each way.
        traffic.hiddenBytes += 2 * others * width * 4
        traffic.metadataBytes += (replicas.worldSize - 1) * 4
        // The replica's tokens, counted once (on tp rank 0) so the ranks' counts add up to the tokens routed.
        guard group.rank == 0 else { return }
        let offset = sizes[..<replicas.rank].reduce(0, +)
        traffic.routedTokens += rows
        for choices in routes[offset..<(offset + rows)] {
            traffic.routedPairs += choices.count
            traffic.offRankPairs += choices.filter { owners[$0.expert] != wide.expert.rank }.count
        }
    }

    /// The router's logits `[rows, expertCount]` for `input`'s rows.
    private func routerLogits(_ input: Tensor) -> Tensor {
        let logits = Tensor(zeros: [input.shape[0], expertCount], dtype: .float32)
        Matmul.linear(input, weight: router, into: logits)
        return logits
    }

    /// Each expert's rows and weights under `routes`.
    private func assign(_ routes: [[(expert: Int, weight: Float)]]) -> Assignment {
        var assigned = Assignment(repeating: [], count: expertCount)
        for (row, choices) in routes.enumerated() {
            for choice in choices { assigned[choice.expert].append((row, choice.weight)) }
        }
        return assigned
    }

    /// `output[row] += weight · expert(input[row])` for every assignment to an expert held here (`input`'s first
    /// `output` width columns are the hidden state).
    private func addExperts(_ assigned: Assignment, input: Tensor, into output: Tensor) {
        let width = output.shape[1]
        for (expert, tokens) in assigned.enumerated() where !tokens.isEmpty {
            guard let weights = experts[expert] else { continue }
            let gathered = Tensor(zeros: [tokens.count, width], dtype: .float32)
            for (index, token) in tokens.enumerated() { gathered.row(index).copy(from: input.row(token.row, columns: 0..<width)) }
            let gateUpOutput = Tensor(zeros: [tokens.count, weights.gateUp.outputSize], dtype: .float32)
            weights.gateUp.apply(gathered, into: gateUpOutput)
            let activated = Tensor(zeros: [tokens.count, weights.gateUp.outputSize / 2], dtype: .float32)
            Activation.siluAndMultiply(gateUpOutput, into: activated)
            // This rank's share of the expert's output (tensor-parallel experts are summed over the group after).
            let partial = Tensor(zeros: [tokens.count, width], dtype: .float32)
            weights.down.apply(activated, into: partial)
            for (index, token) in tokens.enumerated() {
                let (target, source) = (output.row(token.row), partial.row(index))
                for column in 0..<width { target[column] += token.weight * source[column] }
            }
        }
    }

    private func clear(_ tensor: Tensor) {
        let floats = tensor.floats
        for index in 0..<tensor.count { floats[index] = 0 }
    }

    /// Runs an expert-parallel collective, its time counted with the tp group's.
    private func measure<T>(_ body: () throws(CommError) -> T) throws(CommError) -> T {
        try group.communication.measure(body)
    }
}
