/// How the experts of each MoE layer are spread over an expert-parallel group (vLLM's
/// `--expert-placement-strategy`). Counts need not divide: with `linear` the first `experts % ranks` ranks hold
/// one more, with `roundRobin` expert e lives on rank e mod ranks — either way every expert has exactly one home.
public enum ExpertPlacement: String, Sendable, Codable, CaseIterable {
    /// Contiguous blocks: rank r holds experts r·⌊E/n⌋ + min(r, E mod n) onward.
    case linear
    /// Expert e on rank e mod n.
    case roundRobin = "round_robin"

    /// The experts of `rank` out of `ranks`, for `experts` experts, ascending.
    public func experts(of rank: Int, ranks: Int, experts: Int) -> [Int] {
        precondition(ranks >= 1 && (0..<ranks).contains(rank) && experts >= 0, "rank \(rank) of \(ranks), \(experts) experts")
        switch self {
        case .linear:
            let (base, extra) = (experts / ranks, experts % ranks)
            let start = rank * base + min(rank, extra)
            return Array(start..<(start + base + (rank < extra ? 1 : 0)))
        case .roundRobin:
            return Array(stride(from: rank, to: experts, by: ranks))
        }
    }

}
