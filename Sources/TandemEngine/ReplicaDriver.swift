import Dispatch
import TandemComm

/// The loop of a data-parallel replica's driver other than the front end's own (replica ≥ 1, its first rank):
/// it takes the front end's commands — waiting for them only while it has nothing to run — steps its replica's
/// `EngineCore` and sends back every step's outputs with the replica's counters. It runs until the front end
/// releases it (the end of an SPMD call, or shutdown); a failed step, or a rank of its replica lost while idle, is
/// reported to the front end and thrown.
///
/// When the replicas step together (`together`: expert parallelism across them), the driver never steps on its
/// own: it takes exactly one `EngineCore.stepTogether` per `.step` command, which the front end sends every replica
/// each time it steps its own.
enum ReplicaDriver {
    /// How long an idle driver waits for a command before checking its replica's ranks again.
    static let idleWaitSeconds = 0.25

    static func run(_ core: EngineCore, link: ReplicaLink, together: Bool) throws {
        while true {
            var release = false
            for command in try commands(from: link, wait: together || core.unfinishedCount == 0) {
                var report = ReplicaReport()
                switch command {
                case let .add(request):
                    let arrival = DispatchTime.now().uptimeNanoseconds &- request.ageNanoseconds
                    do {
                        try core.add(
                            id: request.id, prompt: request.prompt, promptTokenIDs: request.promptTokenIDs, params: request.params,
                            seed: UInt64(request.seed), arrival: arrival)
                    } catch {
                        // The front end checked the request against the same limits; refusing it here is a bug.
                        try fail(link, "it refused request \(request.id), which the front end accepted: \(error)")
                    }
                    continue
                case let .abort(id):
                    guard let output = core.abort(id) else { continue }
                    report.outputs = [output]
                case .reportCounters:
                    report.counters = try core.countersPerRank()
                case .release:
                    release = true
                    continue
                case .step:
                    do {
                        report.outputs = try core.stepTogether()
                    } catch {
                        try fail(link, "\(error)")
                    }
                    guard !report.outputs.isEmpty else { continue }
                }
                report.stats = core.stats
                try link.reports.enqueue(ReplicaWire.encode(report))
            }
            if release {
                try core.releaseWorkers()
                try link.reports.enqueue(ReplicaWire.encode(ReplicaReport(stats: core.stats, released: true)))
                return
            }
            if together || core.unfinishedCount == 0 {
                if let failure = core.groupFailure { try fail(link, "\(failure)") }
                continue
            }
            let outputs: [EngineOutput]
            do {
                outputs = try core.step()
            } catch {
                try fail(link, "\(error)")
            }
            guard !outputs.isEmpty else { continue }
            try link.reports.enqueue(ReplicaWire.encode(ReplicaReport(outputs: outputs, stats: core.stats)))
        }
    }

    /// The commands that arrived; when `wait`, the first is awaited up to `idleWaitSeconds`.
    private static func commands(from link: ReplicaLink, wait: Bool) throws -> [ReplicaCommand] {
        var commands: [ReplicaCommand] = []
        var timeout = wait ? idleWaitSeconds : 0
        while true {
            let bytes: [UInt8]
            do {
                bytes = try link.commands.dequeue(timeout: timeout)
            } catch {
                guard case .timeout = error else { throw error }
                return commands
            }
            commands += try ReplicaWire.decode([ReplicaCommand].self, bytes, from: link.commands.name)
            timeout = 0
        }
    }

    /// Tells the front end why this replica stops (if it can still hear), then throws it.
    private static func fail(_ link: ReplicaLink, _ reason: String) throws -> Never {
        try? link.reports.enqueue(ReplicaWire.encode(ReplicaReport(failure: reason)))
        throw EngineError.replicaFailed(replica: link.replica, reason)
    }
}
