/// How a MoE layer moves tokens to the ranks holding their experts when expert parallelism spans data-parallel
/// replicas (each replica's tokens differ), and the results back.
public enum ExpertDispatch: String, Sendable, Codable, CaseIterable {
    /// All-to-all(v) over the stage's dp × tp ranks: each tp rank routes its share of the replica's tokens and
    /// sends each (token, expert) pair only to the rank holding that expert; the outputs come back the same way
    /// and one all-gather over tp rebuilds the replica's rows. Moves top-k × hidden × 4 bytes per token each way,
    /// times the share of pairs routed off-rank.
    case allToAll = "all_to_all"
    /// All-gather of every replica's tokens over the ranks of one tp index, each rank computes its experts for
    /// all of them, a reduce-scatter returns each replica its rows and an all-reduce over tp sums the tp ranks'
    /// experts. Moves every other replica's tokens to every rank, routed or not, but in fewer, larger messages.
    case allGather = "all_gather"
}
