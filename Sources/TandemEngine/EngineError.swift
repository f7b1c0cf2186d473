/// Why the engine refused a request or stopped serving.
public enum EngineError: Error, Equatable, Codable, CustomStringConvertible {
    /// The request can never run here (its prompt is longer than the context, or it needs more KV blocks than
    /// the whole pool); the message gives the numbers.
    case requestTooLarge(id: String, String)
    /// A request with this id is already in the engine.
    case duplicateRequest(id: String)
    /// The engine has stopped (shut down, or failed: the reason says why) and takes no more work.
    case engineDead(String)
    /// A step plan read by a worker does not decode (a bug or a corrupted message).
    case malformedPlan(String)
    /// The KV cache configuration does not fit (the message names the numbers and the option to change).
    case invalidCacheConfig(String)
    /// A request's logits were NaN or infinite (broken weights, or an activation overflowed); the request ends,
    /// the engine runs on.
    case nonFiniteLogits(id: String, position: Int)
    /// Another rank of the engine's group failed (could not load, or died); the message says how.
    case rankFailed(rank: Int, String)
    /// The ranks kept dying or could not be started again: `restarts` in a row, the last failure given.
    case restartsGaveUp(restarts: Int, last: String)
    /// The checkpoint on disk no longer matches the model the engine started with.
    case checkpointChanged(String)
    /// A data-parallel replica failed (a rank of it died, or its driver reported an error); the engine stops.
    case replicaFailed(replica: Int, String)

    public var description: String {
        switch self {
        case let .requestTooLarge(id, message): "request \(id) cannot run: \(message)"
        case let .duplicateRequest(id): "request id \(id) is already in use"
        case let .engineDead(reason): "the engine has stopped: \(reason)"
        case let .malformedPlan(message): "malformed step plan: \(message)"
        case let .invalidCacheConfig(message): "KV cache: \(message)"
        case let .rankFailed(rank, message): "rank \(rank) failed: \(message)"
        case let .restartsGaveUp(restarts, last): "gave up after \(restarts) restart\(restarts == 1 ? "" : "s") in a row; the last: \(last)"
        case let .replicaFailed(replica, message): "data-parallel replica \(replica) failed: \(message)"
        case let .checkpointChanged(detail): "the checkpoint changed on disk since the engine started: \(detail)"
        case let .nonFiniteLogits(id, position):
            "request \(id): the logits at position \(position) are not finite (NaN or infinity) — the weights or an activation overflowed; the request is ended"
        }
    }
}
