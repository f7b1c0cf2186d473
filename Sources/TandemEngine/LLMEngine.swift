import Dispatch
import Foundation
import TandemComm
import TandemModel
import TandemTokenizer

/// The engine as a service (vLLM's `AsyncLLM` over its engine core): requests are added and aborted from any
/// thread or task at any moment, and each comes back as an `AsyncThrowingStream` of its progress. The engine
/// loop runs on a thread of its own — it never awaits anything; Swift concurrency is only at this edge — and
/// sleeps while no request is waiting or running, waking every `idleCheckSeconds` to notice a rank that died
/// in between.
///
/// When a rank dies, the requests that were running end with the error; with a `RestartPolicy` that allows it,
/// an engine that loaded its model itself then starts its ranks again, and the requests that had not started
/// yet — and any added meanwhile — run on the new ranks (`state` says `.restarting` in between).
public final class LLMEngine: @unchecked Sendable {
    /// The stream type `add` returns.
    public typealias Stream = AsyncThrowingStream<EngineOutput, any Error>

    /// Where the engine stands.
    public enum State: Sendable, Equatable {
        /// Its ranks are up and it steps.
        case running
        /// A rank died (`reason`); the ranks are being started again (restart `attempt` of the streak).
        case restarting(reason: String, attempt: Int)
        /// It stopped for good: shut down, a rank died with no restart allowed, or restarts gave up.
        case stopped(reason: String)
    }

    /// The checkpoint's tokenizer, when the engine loaded the model itself.
    public let tokenizer: (any Tokenizer)?
    /// The checkpoint's config.json (its context is `maxPositions`).
    public let modelConfig: ModelConfig
    /// How often an idle engine checks its group for a dead rank.
    static let idleCheckSeconds = 0.25
    private let policy: RestartPolicy
    /// Loads the model again, for a restart (nil when the engine was handed a core it did not load).
    private let reload: (() throws -> LLM)?

    private struct Pending {
        let id: String
        let prompt: String
        let tokens: [Int]
        let params: SamplingParams
        /// When `add` accepted it (uptime nanoseconds): its queue time and time to first token count from here,
        /// through any wait for a step boundary or a restart.
        let arrival: UInt64
        let continuation: Stream.Continuation
    }

    private let condition = NSCondition()
    // Guarded by `condition`:
    private var pendingAdds: [Pending] = []
    private var pendingAborts: [String] = []
    private var liveIDs: Set<String> = []
    private var limits: RequestLimits
    private var currentState = State.running
    private var restartCount = 0
    /// The counters after the last step, cumulative over every start of the ranks.
    private var published = EngineStats()
    /// Each data-parallel replica's counters after the last step (since the last start of the ranks).
    private var publishedReplicas: [EngineStats] = []
    private var stopping = false
    private var loopDone = false
    private var stopWaiters: [CheckedContinuation<String, Never>] = []
    // Engine thread only:
    /// The cumulative counters of the models that died.
    private var carried = EngineStats()
    /// The model loaded at init, until the loop takes it.
    private var first: Incarnation?
    private var streams: [String: Stream.Continuation] = [:]

    /// Starts the engine loop over `core` (the driver's engine; its workers already in their loops). A rank that
    /// dies stops it for good: it has no model of its own to load again.
    public convenience init(core: any EngineClient) {
        self.init(core: core, owner: nil, policy: .never, reload: nil)
    }

    /// Loads `config.model` split `tensorParallelSize` ways — for more than one, this process is rank 0 and
    /// spawns the other ranks as `workerProgram` (see `LLM.init(config:tensorParallelSize:workerProgram:)`) —
    /// and starts the engine loop over it; `shutdown` also stops the workers. When a rank dies, `restart` says
    /// whether and how often the engine loads the model and spawns its ranks again.
    public convenience init(
        config: EngineConfig, tensorParallelSize: Int, workerProgram: WorkerProgram = .tandem, restart: RestartPolicy = .never
    ) throws {
        let load = { try LLM(config: config, tensorParallelSize: tensorParallelSize, workerProgram: workerProgram) }
        let llm = try load()
        self.init(core: llm.engine!, owner: llm, policy: restart, reload: load)
    }

    private init(core: any EngineClient, owner: LLM?, policy: RestartPolicy, reload: (() throws -> LLM)?) {
        tokenizer = owner?.tokenizer
        modelConfig = core.runner.model.config
        limits = core.runner.limits
        self.policy = policy
        self.reload = reload
        first = Incarnation(core: core, owner: owner)
        let thread = Thread { [self] in loop() }
        thread.name = "tandem-engine"
        thread.start()
    }

    /// Accepts a request; its outputs arrive on the returned stream, which ends after the output with a finish
    /// reason, or throws the engine's error. Cancelling the consuming task aborts the request. While the engine
    /// restarts its ranks the request waits for them.
    ///
    /// - Throws: at once, for a request the engine can never run (`EngineError.requestTooLarge`,
    ///   `GenerationError` for its parameters or tokens), a duplicate id, or an engine stopped for good.
    public func add(id: String, prompt: String = "", promptTokenIDs: [Int], params: SamplingParams) throws -> Stream {
        let (stream, continuation) = Stream.makeStream()
        condition.lock()
        defer { condition.unlock() }
        try limits.check(id: id, promptTokenIDs: promptTokenIDs, params: params)
        if case let .stopped(reason) = currentState { throw EngineError.engineDead(reason) }
        guard !liveIDs.contains(id) else { throw EngineError.duplicateRequest(id: id) }
        liveIDs.insert(id)
        pendingAdds.append(
            Pending(
                id: id, prompt: prompt, tokens: promptTokenIDs, params: params, arrival: DispatchTime.now().uptimeNanoseconds,
                continuation: continuation))
        continuation.onTermination = { [weak self] reason in
            if case .cancelled = reason { self?.abort(id) }
        }
        condition.signal()
        return stream
    }

    /// Ends a request at the next step boundary (its stream gets a last output with finish reason `abort`);
    /// an unknown or finished id is ignored.
    public func abort(_ id: String) {
        condition.lock()
        pendingAborts.append(id)
        condition.signal()
        condition.unlock()
    }

    /// Ends every open request at the next step boundary, as `abort` would each (for a shutdown's grace period).
    public func abortAll() {
        condition.lock()
        pendingAborts += liveIDs
        condition.signal()
        condition.unlock()
    }

    /// Stops the loop after the current step (or restart attempt), ends every open stream with
    /// `EngineError.engineDead`, and releases the workers. Waits for the loop to stop.
    public func shutdown() {
        condition.lock()
        stopping = true
        condition.signal()
        while !loopDone { condition.wait() }
        condition.unlock()
    }

    /// Where the engine stands now.
    public var state: State {
        condition.lock()
        defer { condition.unlock() }
        return currentState
    }

    /// Times the engine has started its ranks again.
    public var restarts: Int {
        condition.lock()
        defer { condition.unlock() }
        return restartCount
    }

    /// The engine's counters as of its last step: running and waiting requests (those waiting for a restart
    /// included), KV blocks, and token, prefix-cache and preemption counts since it started — carried over
    /// restarts, so they only grow.
    public var stats: EngineStats {
        condition.lock()
        defer { condition.unlock() }
        var stats = published
        stats.waiting += pendingAdds.count
        return stats
    }

    /// Each data-parallel replica's counters as of the last step, by replica (one entry without data
    /// parallelism), since the ranks last started.
    public var replicaStats: [EngineStats] {
        condition.lock()
        defer { condition.unlock() }
        return publishedReplicas
    }

    /// Why the engine stopped for good, or nil while it runs or restarts.
    public var stoppedReason: String? {
        guard case let .stopped(reason) = state else { return nil }
        return reason
    }

    /// Returns once the engine has stopped for good (and its ranks with it), with the reason.
    public func stopped() async -> String {
        await withCheckedContinuation { continuation in
            condition.lock()
            if loopDone, case let .stopped(reason) = currentState {
                condition.unlock()
                continuation.resume(returning: reason)
            } else {
                stopWaiters.append(continuation)
                condition.unlock()
            }
        }
    }

    /// Whether a dead rank leads to a restart.
    private var restartable: Bool { policy.maxRestarts > 0 && reload != nil }

    /// The model the engine runs on now: the driver's core, and the `LLM` that loaded it when the engine did.
    private struct Incarnation {
        let core: any EngineClient
        let owner: LLM?
        let startedAt = DispatchTime.now().uptimeNanoseconds
    }

    private func loop() {
        // Optional so that a dead model's memory is released before the next one loads.
        var current = first.take()
        var streak = 0
        var final: (any Error)?
        while let failure = run(current!.core) {
            let explained = current!.owner?.explained(failure) ?? failure
            if Double(DispatchTime.now().uptimeNanoseconds - current!.startedAt) / 1e9 >= policy.stableSeconds { streak = 0 }
            // The state changes before any stream ends, so whoever sees a stream end also sees why.
            condition.lock()
            currentState = restartable ? .restarting(reason: "\(explained)", attempt: streak + 1) : .stopped(reason: "\(explained)")
            condition.unlock()
            let kept = keepUnstarted(of: current!.core, endingTheRestWith: explained)
            carryOver(current!.core)
            current!.core.shutdown()
            current!.owner?.shutdown()
            current = nil
            guard restartable, let reload else {
                final = explained
                break
            }
            Log.warning("engine: \(explained); starting the ranks again (\(kept) requests that had not started are kept)")
            switch restart(after: explained, reload: reload, streak: &streak) {
            case let .restarted(next):
                current = next
            case let .gaveUp(reason):
                final = EngineError.restartsGaveUp(restarts: policy.maxRestarts, last: reason)
            case .stopping:
                break
            }
            if current == nil { break }
        }
        stop(current, failure: final)
    }

    /// Steps `core` until a shutdown (nil) or a failure (the error): a step that failed, or a rank the idle
    /// check found gone. Requests not yet handed to the core stay pending.
    private func run(_ core: any EngineClient) -> (any Error)? {
        while true {
            condition.lock()
            while pendingAdds.isEmpty && pendingAborts.isEmpty && !stopping && core.unfinishedCount == 0 {
                // Idle: wake now and then to notice a rank that died between requests.
                if let failure = core.groupFailure {
                    condition.unlock()
                    return failure
                }
                _ = condition.wait(until: Date(timeIntervalSinceNow: Self.idleCheckSeconds))
            }
            if stopping {
                condition.unlock()
                return nil
            }
            let (adds, aborts) = (pendingAdds, pendingAborts)
            pendingAdds.removeAll()
            pendingAborts.removeAll()
            condition.unlock()
            for request in adds {
                do {
                    try core.add(
                        id: request.id, prompt: request.prompt, promptTokenIDs: request.tokens, params: request.params, seed: nil, arrival: request.arrival)
                    streams[request.id] = request.continuation
                } catch {
                    request.continuation.finish(throwing: error)
                    forget([request.id])
                }
            }
            for id in aborts { if let output = core.abort(id) { deliver(output) } }
            do {
                for output in try core.step() { deliver(output) }
            } catch {
                return error
            }
            publish(core)
        }
    }

    /// Makes `core`'s counters, plus those of the models before it, what `stats` answers.
    private func publish(_ core: any EngineClient) {
        let now = core.stats
        var stats = Self.totals(carried, plus: now)
        (stats.running, stats.waiting, stats.usedBlocks, stats.totalBlocks) = (now.running, now.waiting, now.usedBlocks, now.totalBlocks)
        let replicas = core.replicaStats
        condition.lock()
        published = stats
        publishedReplicas = replicas
        condition.unlock()
    }

    /// Adds a dead core's totals to those carried over, so they keep growing after a restart; until the next
    /// core runs, nothing is running and no block is in use.
    private func carryOver(_ core: any EngineClient) {
        carried = Self.totals(carried, plus: core.stats)
        condition.lock()
        published = carried
        condition.unlock()
    }

    /// `base` with the counters that only grow (tokens, prefix-cache lookups, preemptions) of `more` added.
    private static func totals(_ base: EngineStats, plus more: EngineStats) -> EngineStats {
        EngineStats(
            prefixQueriedTokens: base.prefixQueriedTokens + more.prefixQueriedTokens, prefixHitTokens: base.prefixHitTokens + more.prefixHitTokens,
            promptTokens: base.promptTokens + more.promptTokens, generatedTokens: base.generatedTokens + more.generatedTokens,
            preemptions: base.preemptions + more.preemptions)
    }

    /// After `core` failed: ends the streams of the requests that had started with `failure`, and puts those
    /// that had not back at the head of the pending list. Returns how many were kept.
    private func keepUnstarted(of core: any EngineClient, endingTheRestWith failure: any Error) -> Int {
        var kept: [Pending] = []
        for request in core.unstartedAtFailure {
            guard let continuation = streams.removeValue(forKey: request.id) else { continue }
            kept.append(
                Pending(
                    id: request.id, prompt: request.prompt, tokens: request.promptTokenIDs, params: request.params, arrival: request.arrival,
                    continuation: continuation))
        }
        if !restartable {
            for request in kept { request.continuation.finish(throwing: failure) }
            kept.removeAll()
        }
        for continuation in streams.values { continuation.finish(throwing: failure) }
        forget(Array(streams.keys))
        streams.removeAll()
        condition.lock()
        pendingAdds.insert(contentsOf: kept, at: 0)
        condition.unlock()
        return kept.count
    }

    private enum RestartOutcome {
        case restarted(Incarnation)
        /// The streak passed the policy's limit; the last failure.
        case gaveUp(String)
        case stopping
    }

    /// Loads the model again until it loads, the streak passes the policy's limit, or a shutdown. Requests
    /// added meanwhile wait in the pending list; those aborted meanwhile end here.
    private func restart(after failure: any Error, reload: () throws -> LLM, streak: inout Int) -> RestartOutcome {
        var reason = "\(failure)"
        while true {
            streak += 1
            guard streak <= policy.maxRestarts else { return .gaveUp(reason) }
            condition.lock()
            currentState = .restarting(reason: reason, attempt: streak)
            let deadline = Date(timeIntervalSinceNow: policy.delay(beforeAttempt: streak))
            while !stopping && Date() < deadline {
                endPendingAborts()
                _ = condition.wait(until: deadline)
            }
            let stop = stopping
            condition.unlock()
            if stop { return .stopping }
            do {
                let llm = try reload()
                guard llm.model.config == modelConfig else {
                    llm.shutdown()
                    throw EngineError.checkpointChanged("its config.json differs")
                }
                condition.lock()
                limits = llm.runner.limits
                currentState = .running
                restartCount += 1
                endPendingAborts()
                condition.unlock()
                Log.warning("engine: the ranks are up again (restart \(streak) in a row, at most \(policy.maxRestarts))")
                return .restarted(Incarnation(core: llm.engine!, owner: llm))
            } catch {
                reason = "restart \(streak) failed: \(error)"
                Log.warning("engine: \(reason)")
            }
        }
    }

    /// Ends the pending requests whose clients went away (caller holds the lock).
    private func endPendingAborts() {
        guard !pendingAborts.isEmpty else { return }
        let aborted = Set(pendingAborts)
        pendingAborts.removeAll()
        for request in pendingAdds where aborted.contains(request.id) { request.continuation.finish() }
        pendingAdds.removeAll { aborted.contains($0.id) }
        liveIDs.subtract(aborted)
    }

    /// Stops for good: every stream still open or pending ends with the reason, the ranks stop.
    private func stop(_ current: Incarnation?, failure: (any Error)?) {
        let reason = failure.map { "\($0)" } ?? "shut down"
        if failure != nil { Log.error("engine: stopped: \(reason)") }
        // Stopped before any stream ends, so whoever sees a stream end also sees why.
        condition.lock()
        currentState = .stopped(reason: reason)
        let unstarted = pendingAdds
        pendingAdds.removeAll()
        liveIDs.removeAll()
        condition.unlock()
        for request in unstarted { request.continuation.finish(throwing: EngineError.engineDead(reason)) }
        for continuation in streams.values { continuation.finish(throwing: failure ?? EngineError.engineDead(reason)) }
        streams.removeAll()
        current?.core.shutdown()
        current?.owner?.shutdown()
        condition.lock()
        loopDone = true
        let waiters = stopWaiters
        stopWaiters.removeAll()
        condition.broadcast()
        condition.unlock()
        for waiter in waiters { waiter.resume(returning: reason) }
    }

    private func deliver(_ output: EngineOutput) {
        guard let continuation = streams[output.requestID] else { return }
        if let failure = output.failure {
            continuation.finish(throwing: failure)
        } else {
            continuation.yield(output)
        }
        if output.finishReason != nil {
            continuation.finish()
            streams[output.requestID] = nil
            forget([output.requestID])
        }
    }

    private func forget(_ ids: [String]) {
        condition.lock()
        liveIDs.subtract(ids)
        condition.unlock()
    }
}
