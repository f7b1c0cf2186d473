/// Why a communication operation failed.
///
/// After any of these the group is broken: every later call on it throws the same error at once.
public enum CommError: Error, Equatable, CustomStringConvertible {
    /// The operation did not complete before its deadline. `waitingFor` lists the ranks this rank was still
    /// waiting to hear from (or to drain data to).
    case timeout(group: String, operation: String, sequence: UInt64, waitingFor: [Int], seconds: Double)
    /// A peer process died or closed its connections.
    case peerLost(rank: Int, group: String, detail: String)
    /// A peer hit an error and aborted the group; `reason` is its error.
    case peerAborted(rank: Int, group: String, reason: String)
    /// Ranks issued different operations, sizes or dtypes; both sides are described.
    case mismatch(group: String, peer: Int, expected: String, received: String)
    /// An argument is invalid (sizes, ranks, dtypes); detected before any data moved on this rank.
    case invalidArgument(group: String, operation: String, detail: String)
    /// The group was shut down by this process.
    case shutDown(group: String)
    /// Setting up the group failed.
    case bootstrap(group: String, detail: String)
    /// The library under a backend (MPI) reported an error it does not say more about; `detail` is its message.
    case library(group: String, operation: String, detail: String)

    /// `peerLost` for a peer that shut its group down cleanly while this rank still waited on it.
    static func departed(_ rank: Int, group: String) -> CommError {
        .peerLost(rank: rank, group: group, detail: "rank \(rank) shut its process group down while this rank still expected data from it")
    }

    public var description: String {
        switch self {
        case let .timeout(group, operation, sequence, waitingFor, seconds):
            "group '\(group)': \(operation) #\(sequence) timed out after \(seconds) s; not heard from rank(s) "
                + waitingFor.map(String.init).joined(separator: ", ")
                + " (\(TandemEnvironment.commTimeout.name) sets the deadline)"
        case let .peerLost(rank, group, detail):
            "group '\(group)': lost rank \(rank) (\(detail))"
        case let .peerAborted(rank, group, reason):
            "group '\(group)': rank \(rank) aborted the group: \(reason)"
        case let .mismatch(group, peer, expected, received):
            "group '\(group)': ranks disagree: this rank expected \(expected) from rank \(peer), "
                + "but rank \(peer) sent \(received)"
        case let .invalidArgument(group, operation, detail):
            "group '\(group)': invalid \(operation): \(detail)"
        case let .shutDown(group):
            "group '\(group)' has been shut down"
        case let .bootstrap(group, detail):
            "group '\(group)': setup failed: \(detail)"
        case let .library(group, operation, detail):
            "group '\(group)': \(operation) failed in the backend's library: \(detail)"
        }
    }
}
