import Dispatch
import Foundation
import TandemComm

/// The front end of data-parallel replicas (vLLM's DP coordinator and its load-balancing engine-core client), on
/// global rank 0: each request goes to the replica with the least outstanding work — the tokens its unfinished
/// requests hold or will hold (prompt + generated so far), then the fewest requests, then the lowest index — and
/// stays there. Replica 0 is this rank's own `EngineCore`, stepped on the caller's thread; every other replica runs
/// in its own processes under its driver (`ReplicaDriver`), reached through a `ReplicaLink`: commands are sent once
/// per step, reports are drained by a thread per replica so that no driver ever waits for this one.
///
/// With expert parallelism across the replicas their MoE layers' collectives span them all, so they step
/// together (`together`): while any request is unfinished, every front-end step sends each remote replica a
/// `.step` command and steps replica 0 with `EngineCore.stepTogether`, so every replica launches one micro-batch —
/// empty when it has nothing to run — per step, as vLLM's replicas run dummy batches.
///
/// A replica that fails (a rank of it died, its driver reported an error or vanished) fails the whole engine, as
/// one dead rank does without data parallelism: every unfinished request ends with the error, and those that had
/// produced nothing yet are in `unstartedAtFailure` for a restart. Not thread-safe, as `EngineCore`.
public final class DataParallelEngine: EngineClient {
    private let local: EngineCore
    private let remotes: [RemoteReplica]
    /// Where each unfinished request runs and the tokens it holds or will hold.
    private var placement: [String: (replica: Int, tokens: Int)] = [:]
    /// Outstanding tokens and unfinished requests, by replica.
    private var load: [Int]
    private var requestCounts: [Int]
    /// Requests that have produced nothing yet (their clients saw nothing: a restart may run them again).
    private var unstarted: [String: UnstartedRequest] = [:]
    /// Commands for each remote replica, sent at the next step.
    private var outbox: [[ReplicaCommand]]
    private var deadReason: String?
    private var ranLocalStep = false
    private let together: Bool
    /// Whether the replicas' drivers and workers have left their loops (`releaseWorkers`) and not been given work
    /// since.
    private var released = false
    /// Signalled by every remote replica's reader when a report arrives.
    private let condition: NSCondition
    public private(set) var unstartedAtFailure: [UnstartedRequest] = []
    /// How long a step with nothing to run here waits for a report.
    static let reportWaitSeconds = 0.05
    /// How long the front end waits for a replica's answer to a question (compute times, release).
    static let answerTimeoutSeconds = 300.0

    /// - Parameters:
    ///   - local: replica 0's engine (this rank drives it).
    ///   - links: one per other replica, in replica order.
    ///   - together: whether the replicas step together.
    init(local: EngineCore, links: [ReplicaLink], together: Bool) {
        self.local = local
        self.together = together
        let condition = NSCondition()
        self.condition = condition
        remotes = links.map { RemoteReplica(link: $0, condition: condition) }
        load = Array(repeating: 0, count: links.count + 1)
        requestCounts = load
        outbox = Array(repeating: [], count: links.count)
    }

    deinit { shutdown() }

    public var runner: ModelRunner { local.runner }
    public var unfinishedCount: Int { placement.count }
    public var replicaStats: [EngineStats] { [local.stats] + remotes.map(\.stats) }
    public var lastStep: StepStats { ranLocalStep ? local.lastStep : StepStats() }
    public var logitsWaitSeconds: Double { local.logitsWaitSeconds }

    public var stats: EngineStats {
        replicaStats.reduce(EngineStats()) { sum, next in
            EngineStats(
                running: sum.running + next.running, waiting: sum.waiting + next.waiting, usedBlocks: sum.usedBlocks + next.usedBlocks,
                totalBlocks: sum.totalBlocks + next.totalBlocks, prefixQueriedTokens: sum.prefixQueriedTokens + next.prefixQueriedTokens,
                prefixHitTokens: sum.prefixHitTokens + next.prefixHitTokens, promptTokens: sum.promptTokens + next.promptTokens,
                generatedTokens: sum.generatedTokens + next.generatedTokens, preemptions: sum.preemptions + next.preemptions)
        }
    }

    public var prefixCacheTokens: (queried: Int, hits: Int) {
        let total = stats
        return (total.prefixQueriedTokens, total.prefixHitTokens)
    }

    public var groupFailure: (any Error)? {
        if let failure = local.groupFailure { return failure }
        return remotes.lazy.compactMap(\.failure).first
    }

    public func check(id: String, promptTokenIDs: [Int], params: SamplingParams) throws {
        // Every replica's pool has the block count agreed over the whole world: one check holds for all.
        try local.check(id: id, promptTokenIDs: promptTokenIDs, params: params)
    }

    public func add(id: String, prompt: String, promptTokenIDs: [Int], params: SamplingParams, seed: UInt64?, arrival: UInt64?) throws {
        if let deadReason { throw EngineError.engineDead(deadReason) }
        try check(id: id, promptTokenIDs: promptTokenIDs, params: params)
        released = false
        guard placement[id] == nil else { throw EngineError.duplicateRequest(id: id) }
        let arrival = arrival ?? DispatchTime.now().uptimeNanoseconds
        let seed = params.seed ?? seed ?? UInt64.random(in: 0...UInt64.max)
        let replica = load.indices.min { (load[$0], requestCounts[$0], $0) < (load[$1], requestCounts[$1], $1) }!
        if replica == 0 {
            try local.add(id: id, prompt: prompt, promptTokenIDs: promptTokenIDs, params: params, seed: seed, arrival: arrival)
        } else {
            outbox[replica - 1].append(
                .add(
                    ReplicaRequest(
                        id: id, prompt: prompt, promptTokenIDs: promptTokenIDs, params: params, seed: String(seed),
                        ageNanoseconds: DispatchTime.now().uptimeNanoseconds &- arrival)))
        }
        placement[id] = (replica, promptTokenIDs.count)
        load[replica] += promptTokenIDs.count
        requestCounts[replica] += 1
        unstarted[id] = UnstartedRequest(id: id, prompt: prompt, promptTokenIDs: promptTokenIDs, params: params, arrival: arrival)
    }

    public func abort(_ id: String) -> EngineOutput? {
        guard let (replica, _) = placement[id] else { return nil }
        guard replica == 0 else {
            outbox[replica - 1].append(.abort(id: id))
            return nil
        }
        let output = local.abort(id)
        if let output { account([output]) }
        return output
    }

    public func step() throws -> [EngineOutput] {
        if let deadReason { throw EngineError.engineDead(deadReason) }
        ranLocalStep = false
        do {
            if together {
                guard unfinishedCount > 0 else {
                    try sendCommands()
                    return []
                }
                try sendCommands(adding: .step)
                var outputs = try local.stepTogether()
                ranLocalStep = true
                outputs += try takeReports()
                account(outputs)
                return outputs
            }
            try sendCommands()
            var outputs = try takeReports()
            if local.unfinishedCount > 0 {
                outputs += try local.step()
                ranLocalStep = true
            } else if outputs.isEmpty && unfinishedCount > 0 {
                condition.lock()
                if !remotes.contains(where: \.hasNews) { _ = condition.wait(until: Date(timeIntervalSinceNow: Self.reportWaitSeconds)) }
                condition.unlock()
                outputs = try takeReports()
            }
            account(outputs)
            return outputs
        } catch {
            deadReason = "\(error)"
            unstartedAtFailure = unstarted.values.sorted { $0.arrival < $1.arrival }
            placement.removeAll()
            unstarted.removeAll()
            throw error
        }
    }

    public func countersPerRank() throws -> [RankCounters] {
        try sendCommands(adding: .reportCounters)
        var counters = try local.countersPerRank()
        for remote in remotes { counters += try remote.answer(to: "its ranks' counters") { $0.counters }! }
        return counters
    }

    public func releaseWorkers() throws {
        try sendCommands(adding: .release)
        try local.releaseWorkers()
        for remote in remotes { _ = try remote.answer(to: "release") { $0.released ? true : nil } }
        released = true
    }

    /// Releases the replicas (unless `releaseWorkers` did and no work came since) and closes the links.
    public func shutdown() {
        if deadReason == nil {
            deadReason = "shut down"
            if !released { try? releaseWorkers() }
        }
        if !released { local.shutdown() }
        for remote in remotes { remote.stop() }
    }

    /// Sends every remote replica the commands waiting for it, and `command` after them.
    private func sendCommands(adding command: ReplicaCommand? = nil) throws {
        if let command { outbox = outbox.map { $0 + [command] } }
        for (remote, commands) in zip(remotes, outbox) where !commands.isEmpty {
            try remote.link.commands.enqueue(ReplicaWire.encode(commands))
        }
        outbox = outbox.map { _ in [] }
    }

    /// The outputs the remote replicas reported since the last step.
    private func takeReports() throws -> [EngineOutput] {
        var outputs: [EngineOutput] = []
        for remote in remotes { outputs += try remote.takeOutputs() }
        return outputs
    }

    /// Updates where each request stands after its outputs.
    private func account(_ outputs: [EngineOutput]) {
        for output in outputs {
            guard let (replica, tokens) = placement[output.requestID] else { continue }
            unstarted[output.requestID] = nil
            if output.finishReason != nil {
                placement[output.requestID] = nil
                load[replica] -= tokens
                requestCounts[replica] -= 1
            } else {
                placement[output.requestID] = (replica, tokens + output.newTokenIDs.count)
                load[replica] += output.newTokenIDs.count
            }
        }
    }
}

/// The front end's view of one replica in other processes: its link and what its driver reported, drained by a
/// thread of its own.
final class RemoteReplica: @unchecked Sendable {
    let link: ReplicaLink
    /// Shared by every remote replica of a front end, so a step with nothing local to run wakes on any report.
    private let condition: NSCondition
    // Guarded by `condition`:
    private var reports: [ReplicaReport] = []
    private var latestStats = EngineStats()
    private var lost: EngineError?
    private var readerDone = false

    init(link: ReplicaLink, condition: NSCondition) {
        self.link = link
        self.condition = condition
        let thread = Thread { [self] in read() }
        thread.name = "tandem-dp-\(link.replica)"
        thread.start()
    }

    /// The replica's counters as of its last report.
    var stats: EngineStats {
        condition.lock()
        defer { condition.unlock() }
        return latestStats
    }

    /// Why the replica is gone; nil while it runs.
    var failure: EngineError? {
        condition.lock()
        defer { condition.unlock() }
        return lost
    }

    /// The outputs reported so far (answers to questions stay for `answer`).
    ///
    /// - Throws: `EngineError.replicaFailed` once the replica is gone.
    func takeOutputs() throws -> [EngineOutput] {
        condition.lock()
        defer { condition.unlock() }
        var outputs: [EngineOutput] = []
        reports.removeAll { report in
            guard report.counters == nil && !report.released else { return false }
            outputs += report.outputs
            return true
        }
        if outputs.isEmpty, let lost { throw lost }
        return outputs
    }

    /// Whether a report or the replica's end is waiting to be taken (the caller holds the shared condition).
    var hasNews: Bool { !reports.isEmpty || lost != nil }

    /// Waits for the report that answers a question (`pick` gives its answer), keeping other reports.
    func answer<Answer>(to question: String, _ pick: (ReplicaReport) -> Answer?) throws -> Answer? {
        let deadline = Date(timeIntervalSinceNow: DataParallelEngine.answerTimeoutSeconds)
        condition.lock()
        defer { condition.unlock() }
        while true {
            if let index = reports.firstIndex(where: { pick($0) != nil }) { return pick(reports.remove(at: index)) }
            if let lost { throw lost }
            guard condition.wait(until: deadline) || Date() < deadline else {
                throw EngineError.replicaFailed(
                    replica: link.replica, "it did not answer \(question) within \(Int(DataParallelEngine.answerTimeoutSeconds)) s")
            }
        }
    }

    /// Closes the link and waits for the reader to stop.
    func stop() {
        link.shutdown()
        condition.lock()
        while !readerDone { condition.wait() }
        condition.unlock()
    }

    private func read() {
        var ending: EngineError?
        while ending == nil {
            do {
                let report = try ReplicaWire.decode(ReplicaReport.self, try link.reports.dequeue(timeout: 1), from: link.reports.name)
                condition.lock()
                latestStats = report.stats
                if let failure = report.failure { ending = .replicaFailed(replica: link.replica, failure) }
                reports.append(report)
                condition.broadcast()
                condition.unlock()
            } catch QueueError.timeout {
                continue
            } catch QueueError.closed {
                break
            } catch {
                ending = .replicaFailed(replica: link.replica, "\(error)")
            }
        }
        condition.lock()
        if lost == nil { lost = ending }
        readerDone = true
        condition.broadcast()
        condition.unlock()
    }
}
