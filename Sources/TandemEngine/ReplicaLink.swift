import Foundation
import TandemComm

/// The front end's line to one data-parallel replica other than its own (replica ≥ 1): a group of two — global
/// rank 0 and the replica's driver — carrying two broadcast queues: commands in (requests, aborts), reports out
/// (outputs, counters, a failure). Every rank of the launched world takes part in creating the links.
final class ReplicaLink {
    /// The replica at the other end.
    let replica: Int
    /// Front end → driver: `[ReplicaCommand]` per message.
    let commands: BroadcastQueue
    /// Driver → front end: one `ReplicaReport` per message.
    let reports: BroadcastQueue
    private let group: ProcessGroup

    /// Generous rings: the front end never waits for a driver busy in a long step, and the driver never waits for
    /// the front end (its reader drains reports on a thread of its own).
    private static let chunkBytes = 64 << 10
    private static let chunks = 64

    private init(replica: Int, group: ProcessGroup) throws(QueueError) {
        self.replica = replica
        self.group = group
        commands = try BroadcastQueue(world: group, writer: 0, name: "dp-commands-\(replica)", chunkBytes: Self.chunkBytes, chunks: Self.chunks)
        reports = try BroadcastQueue(world: group, writer: 1, name: "dp-reports-\(replica)", chunkBytes: Self.chunkBytes, chunks: Self.chunks)
    }

    /// Creates every link of `all` (laid out as `replicaCount` replicas of `replicaSize` ranks); every rank calls
    /// it. Global rank 0 gets one link per other replica, each other replica's driver its own, the rest none.
    static func connect(all: ProcessGroup, replicaCount: Int, replicaSize: Int) throws -> [ReplicaLink] {
        var links: [ReplicaLink] = []
        for replica in 1..<max(replicaCount, 1) {
            let driver = replica * replicaSize
            guard let group = try all.split([[0, driver]], name: "dp-link-\(replica)") else { continue }
            links.append(try ReplicaLink(replica: replica, group: group))
        }
        return links
    }

    /// Why the other end is gone, noticed without a message; nil while it is here.
    var lostMember: CommError? { commands.lostMember ?? reports.lostMember }

    func shutdown() {
        commands.shutdown()
        reports.shutdown()
        group.shutdown()
    }
}

/// What the front end tells a replica's driver.
enum ReplicaCommand: Codable {
    /// Run this request.
    case add(ReplicaRequest)
    /// End this request (its last output comes back in a report; an unknown id is ignored).
    case abort(id: String)
    /// Report each rank's counters (`LLM.countersPerRank`).
    case reportCounters
    /// Release the replica's workers and leave the driver loop (the end of an SPMD call, or shutdown).
    case release
    /// Take one step in lockstep with the other replicas (`EngineCore.stepTogether`).
    case step
}

/// A request as it travels to a replica.
struct ReplicaRequest: Codable {
    var id: String
    var prompt: String
    var promptTokenIDs: [Int]
    var params: SamplingParams
    /// The sampling seed, in decimal (JSON numbers do not keep 64 bits everywhere).
    var seed: String
    /// Nanoseconds since the front end accepted it (clocks of other hosts differ; ages do not).
    var ageNanoseconds: UInt64
}

/// What a replica's driver tells the front end after a step that produced anything, or when asked.
struct ReplicaReport: Codable {
    var outputs: [EngineOutput] = []
    /// The replica's counters after the step.
    var stats = EngineStats()
    /// The answer to `reportCounters`: each of the replica's ranks' counters.
    var counters: [RankCounters]?
    /// The replica stopped: why (the driver leaves its loop after sending it).
    var failure: String?
    /// The answer to `release`: the workers left their loop.
    var released = false
}

/// Encoding of the messages: JSON, with non-finite floats spelled out rather than refused.
enum ReplicaWire {
    static func encode<Value: Encodable>(_ value: Value) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return Array(try encoder.encode(value))
    }

    static func decode<Value: Decodable>(_ type: Value.Type, _ bytes: [UInt8], from queue: String) throws -> Value {
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        do {
            return try decoder.decode(type, from: Data(bytes))
        } catch {
            throw EngineError.malformedPlan("queue '\(queue)': a message that is not a \(Value.self): \(error)")
        }
    }
}

extension EngineOutput: Codable {
    private enum CodingKeys: String, CodingKey {
        case requestID, textDelta, newTokenIDs, finishReason, output, metrics, failure, logprobs
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let output = try container.decodeIfPresent(RequestOutput.self, forKey: .output)
        let metrics = try container.decodeIfPresent(RequestMetrics.self, forKey: .metrics)
        guard (output == nil) == (metrics == nil) else {
            throw DecodingError.dataCorruptedError(forKey: .metrics, in: container, debugDescription: "a final output needs both output and metrics")
        }
        self.init(
            requestID: try container.decode(String.self, forKey: .requestID), textDelta: try container.decode(String.self, forKey: .textDelta),
            newTokenIDs: try container.decode([Int].self, forKey: .newTokenIDs),
            finishReason: try container.decodeIfPresent(FinishReason.self, forKey: .finishReason),
            final: output.map { ($0, metrics!) }, failure: try container.decodeIfPresent(EngineError.self, forKey: .failure),
            logprobs: try container.decode([TokenLogprobs].self, forKey: .logprobs))
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(requestID, forKey: .requestID)
        try container.encode(textDelta, forKey: .textDelta)
        try container.encode(newTokenIDs, forKey: .newTokenIDs)
        try container.encodeIfPresent(finishReason, forKey: .finishReason)
        try container.encodeIfPresent(final?.output, forKey: .output)
        try container.encodeIfPresent(final?.metrics, forKey: .metrics)
        try container.encodeIfPresent(failure, forKey: .failure)
        try container.encode(logprobs, forKey: .logprobs)
    }
}
