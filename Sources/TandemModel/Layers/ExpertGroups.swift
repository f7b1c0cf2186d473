import TandemComm
import TandemParallel

/// The groups a MoE layer dispatches over when expert parallelism spans data-parallel replicas (vLLM's EP group
/// of dp × tp ranks per pipeline stage): the experts are placed over `expert`, whose rank d·tp + t is replica d's
/// tp rank t, and each layer moves the replica's tokens to the ranks holding their experts as `dispatch` says.
/// Every rank of every replica's stage must run each MoE layer together — the engine steps replicas in
/// lockstep. With one replica the layer needs none of this: its tp ranks hold the same tokens.
public final class ExpertGroups: Sendable {
    /// The stage's dp × tp ranks, in (replica, tp rank) order.
    public let expert: ProcessGroup
    /// This rank's tp index across the replicas (dp ranks), for the all-gather form.
    public let replicas: ProcessGroup
    public let dispatch: ExpertDispatch

    public init(expert: ProcessGroup, replicas: ProcessGroup, dispatch: ExpertDispatch) {
        self.expert = expert
        self.replicas = replicas
        self.dispatch = dispatch
    }

    /// Closes both groups.
    public func shutdown() {
        replicas.shutdown()
        expert.shutdown()
    }
}

/// What a rank's MoE layers moved over the expert-parallel groups since loading, summed over its layers.
public struct ExpertTraffic: Sendable, Equatable, Codable {
    /// Tokens this rank routed (its share of its replica's tokens, per layer).
    public var routedTokens = 0
    /// (token, expert) pairs this rank routed, and those whose expert is on another rank.
    public var routedPairs = 0
    public var offRankPairs = 0
    /// Hidden-state bytes sent to and received from other ranks (both directions, both phases).
    public var hiddenBytes = 0
    /// Other bytes moved with them (each dispatched row's expert id, the token counts).
    public var metadataBytes = 0

    public init() {}

    /// The sum of two ranks' or layers' traffic.
    public static func + (left: ExpertTraffic, right: ExpertTraffic) -> ExpertTraffic { left.combined(with: right, by: +) }

    /// What `left` counted beyond `right` (a later reading less an earlier one).
    public static func - (left: ExpertTraffic, right: ExpertTraffic) -> ExpertTraffic { left.combined(with: right, by: -) }

    /// Every count of `self` and `other` put through `operation`.
    private func combined(with other: ExpertTraffic, by operation: (Int, Int) -> Int) -> ExpertTraffic {
        var result = ExpertTraffic()
        result.routedTokens = operation(routedTokens, other.routedTokens)
        result.routedPairs = operation(routedPairs, other.routedPairs)
        result.offRankPairs = operation(offRankPairs, other.offRankPairs)
        result.hiddenBytes = operation(hiddenBytes, other.hiddenBytes)
        result.metadataBytes = operation(metadataBytes, other.metadataBytes)
        return result
    }
}
