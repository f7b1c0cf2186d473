import Foundation
import TandemComm
import TandemModel
import TandemTokenizer

/// The engine as a service (vLLM's `AsyncLLM` over its engine core): requests are added and aborted from any
/// thread or task at any moment, and each comes back as an `AsyncThrowingStream` of its progress. The engine
/// loop runs on a thread of its own — it never awaits anything; Swift concurrency is only at this edge — and
/// sleeps while no request is waiting or running, waking every `idleCheckSeconds` to notice a rank that died
/// in between (`stoppedReason` then names it).
public final class LLMEngine: @unchecked Sendable {
    /// The stream type `add` returns.
    public typealias Stream = AsyncThrowingStream<EngineOutput, any Error>

    private let core: EngineCore
    /// The model this engine was loaded with, when it loaded one itself (shut down with the engine).
    private let owner: LLM?
    /// The checkpoint's tokenizer, when the engine loaded the model itself.
    public var tokenizer: (any Tokenizer)? { owner?.tokenizer }
    /// The checkpoint's config.json (its context is `maxPositions`).
    public var modelConfig: ModelConfig { core.runner.model.config }
    /// How often an idle engine checks its group for a dead rank.
    static let idleCheckSeconds = 0.25
    private let condition = NSCondition()
    // Guarded by `condition`:
    private var pendingAdds: [(id: String, prompt: String, tokens: [Int], params: SamplingParams, continuation: Stream.Continuation)] = []
    private var pendingAborts: [String] = []
    private var liveIDs: Set<String> = []
    private var stopping = false
    private var deadReason: String?
    private var loopDone = false
    // Engine thread only:
    private var streams: [String: Stream.Continuation] = [:]

    /// Starts the engine loop over `core` (the driver's engine; its workers already in their loops).
    public convenience init(core: EngineCore) {
        self.init(core: core, owner: nil)
    }

    /// Loads `config.model` split `tensorParallelSize` ways — for more than one, this process is rank 0 and
    /// spawns the other ranks as `workerProgram` (see `LLM.init(config:tensorParallelSize:workerProgram:)`) —
    /// and starts the engine loop over it; `shutdown` also stops the workers.
    public convenience init(config: EngineConfig, tensorParallelSize: Int, workerProgram: WorkerProgram = .tandem) throws {
        let llm = try LLM(config: config, tensorParallelSize: tensorParallelSize, workerProgram: workerProgram)
        self.init(core: llm.engine!, owner: llm)
    }

    private init(core: EngineCore, owner: LLM?) {
        self.core = core
        self.owner = owner
        let thread = Thread { [self] in loop() }
        thread.name = "tandem-engine"
        thread.start()
    }

    /// Accepts a request; its outputs arrive on the returned stream, which ends after the output with a finish
    /// reason, or throws the engine's error. Cancelling the consuming task aborts the request.
    ///
    /// - Throws: at once, for a request the engine can never run (`EngineError.requestTooLarge`,
    ///   `GenerationError` for its parameters or tokens), a duplicate id, or a dead engine.
    public func add(id: String, prompt: String = "", promptTokenIDs: [Int], params: SamplingParams) throws -> Stream {
        try core.check(id: id, promptTokenIDs: promptTokenIDs, params: params)
        let (stream, continuation) = Stream.makeStream()
        condition.lock()
        defer { condition.unlock() }
        if let deadReason { throw EngineError.engineDead(deadReason) }
        guard !liveIDs.contains(id) else { throw EngineError.duplicateRequest(id: id) }
        liveIDs.insert(id)
        pendingAdds.append((id, prompt, promptTokenIDs, params, continuation))
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

    /// Stops the loop after the current step, ends every open stream with `EngineError.engineDead`, and releases
    /// the workers. Waits for the loop to stop.
    public func shutdown() {
        condition.lock()
        stopping = true
        condition.signal()
        while !loopDone { condition.wait() }
        condition.unlock()
    }

    /// Why the engine stopped, or nil while it runs.
    public var stoppedReason: String? {
        condition.lock()
        defer { condition.unlock() }
        return deadReason
    }

    private func loop() {
        var failure: (any Error)?
        while failure == nil {
            condition.lock()
            // Idle: wake now and then to notice a rank that died between requests.
            var idleFailure: CommError?
            while pendingAdds.isEmpty && pendingAborts.isEmpty && !stopping && core.unfinishedCount == 0 {
                idleFailure = core.groupFailure
                if idleFailure != nil { break }
                _ = condition.wait(until: Date(timeIntervalSinceNow: Self.idleCheckSeconds))
            }
            let (adds, aborts, stop) = (pendingAdds, pendingAborts, stopping)
            pendingAdds.removeAll()
            pendingAborts.removeAll()
            condition.unlock()
            if stop { break }
            if let idleFailure {
                failure = owner?.explained(idleFailure) ?? idleFailure
                for request in adds { request.continuation.finish(throwing: failure!) }
                break
            }
            for request in adds {
                do {
                    try core.add(id: request.id, prompt: request.prompt, promptTokenIDs: request.tokens, params: request.params)
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
                failure = owner?.explained(error) ?? error
            }
        }
        let reason = failure.map { "\($0)" } ?? "shut down"
        // Dead before any stream ends, so whoever sees a stream end also sees why.
        condition.lock()
        deadReason = reason
        let unstarted = pendingAdds
        pendingAdds.removeAll()
        liveIDs.removeAll()
        condition.unlock()
        for request in unstarted { request.continuation.finish(throwing: EngineError.engineDead(reason)) }
        for continuation in streams.values { continuation.finish(throwing: failure ?? EngineError.engineDead(reason)) }
        streams.removeAll()
        core.shutdown()
        owner?.shutdown()
        condition.lock()
        loopDone = true
        condition.broadcast()
        condition.unlock()
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
