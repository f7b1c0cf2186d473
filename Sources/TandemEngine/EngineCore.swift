import Dispatch
import TandemComm
import TandemModel
import TandemTokenizer
import TandemTensor

/// A request's progress after a step, for streams: the new text and ids, and on the last one the finish reason
/// and the whole output.
public struct EngineOutput: Sendable {
    public let requestID: String
    /// Text completed since the last output (held back while a stop string could still claim it).
    public let textDelta: String
    /// Tokens sampled since the last output.
    public let newTokenIDs: [Int]
    /// Set on the last output of the request.
    public let finishReason: FinishReason?
    /// On the last output: the whole result and its timings.
    public let final: (output: RequestOutput, metrics: RequestMetrics)?
    /// Set (with finish reason `abort`) when this request failed on its own while the engine runs on — its
    /// logits were not finite.
    public var failure: EngineError? = nil
    /// For each of `newTokenIDs`, its log-probabilities, when the request asked for them (`SamplingParams.logprobs`).
    public var logprobs: [TokenLogprobs] = []
}

/// Per-request timings and counts (vLLM's request metrics).
public struct RequestMetrics: Sendable, Equatable, Codable {
    /// Seconds from `add` to first being scheduled.
    public var queueSeconds = 0.0
    /// Seconds from `add` to the first token.
    public var timeToFirstTokenSeconds = 0.0
    /// Seconds between consecutive tokens.
    public var interTokenSeconds: [Double] = []
    /// Seconds from `add` to the end.
    public var endToEndSeconds = 0.0
    public var promptTokens = 0
    public var outputTokens = 0
    /// Prompt tokens whose KV came from the prefix cache.
    public var cachedPromptTokens = 0
    public var preemptions = 0
}

/// One step's shape, for statistics.
public struct StepStats: Sendable, Equatable {
    public var scheduledRequests = 0
    public var scheduledTokens = 0
    public var usedBlocks = 0
    public var totalBlocks = 0
    public var preemptions = 0
    /// Seconds spent scheduling and sending the plan (the driver's overhead), and in the whole step.
    public var scheduleSeconds = 0.0
    public var stepSeconds = 0.0
}

/// The engine's counters at a moment (what `--log-stats` prints and the server will export).
public struct EngineStats: Sendable, Equatable, Codable {
    public var running = 0
    public var waiting = 0
    public var usedBlocks = 0
    public var totalBlocks = 0
    /// Prompt tokens looked up in the prefix cache, and those found there.
    public var prefixQueriedTokens = 0
    public var prefixHitTokens = 0
    /// Tokens computed for prompts (recomputation included) and tokens generated, since the engine started.
    public var promptTokens = 0
    public var generatedTokens = 0
    public var preemptions = 0

    public init(
        running: Int = 0, waiting: Int = 0, usedBlocks: Int = 0, totalBlocks: Int = 0, prefixQueriedTokens: Int = 0, prefixHitTokens: Int = 0,
        promptTokens: Int = 0, generatedTokens: Int = 0, preemptions: Int = 0
    ) {
        (self.running, self.waiting, self.usedBlocks, self.totalBlocks) = (running, waiting, usedBlocks, totalBlocks)
        (self.prefixQueriedTokens, self.prefixHitTokens) = (prefixQueriedTokens, prefixHitTokens)
        (self.promptTokens, self.generatedTokens, self.preemptions) = (promptTokens, generatedTokens, preemptions)
    }

    /// One line in the manner of vLLM's periodic log, with throughput over `seconds` since `earlier`.
    public func line(since earlier: EngineStats, seconds: Double) -> String {
        let hitRate = prefixQueriedTokens > 0 ? Double(prefixHitTokens) / Double(prefixQueriedTokens) * 100 : 0
        return String(
            format: "engine: prompt %.1f tokens/s, generation %.1f tokens/s, running %d, waiting %d, KV cache %.1f%% (%d/%d blocks), prefix cache hit rate %.1f%%, preemptions %d",
            Double(promptTokens - earlier.promptTokens) / seconds, Double(generatedTokens - earlier.generatedTokens) / seconds, running, waiting,
            Double(usedBlocks) / Double(max(totalBlocks, 1)) * 100, usedBlocks, totalBlocks, hitRate, preemptions)
    }
}

/// A request that had never been scheduled when its engine failed: what it takes to add it to another engine
/// (its client has seen nothing of it, so running it there loses and repeats nothing).
public struct UnstartedRequest: Sendable {
    public let id: String
    public let prompt: String
    public let promptTokenIDs: [Int]
    public let params: SamplingParams
    /// When the first engine accepted it (uptime nanoseconds), so its queue time counts from there.
    public let arrival: UInt64
}

/// The driver's engine (vLLM's `EngineCore`): accepts requests, and each `step` schedules work, sends the plan
/// to the workers, runs this rank's part of the forward pass, samples, and reports each request's progress.
///
/// With pipeline stages the driver keeps up to one micro-batch per stage in flight (vLLM's batch queue): a step
/// launches batches — schedule, send the plan, run the first stage, which hands its hidden states on — until the
/// pipeline is full or nothing more can be scheduled, then completes the oldest: it waits for that batch's logits
/// from the last stage and samples. A request is in at most one batch in flight; its next token joins the next
/// batch launched after its batch completes. Each micro-batch takes at most 1/pp of the requests that could run,
/// so the batches in flight stay even. Every stage runs the plans in the order sent, so a batch always
/// sees the cache writes of the batches before it.
///
/// Not thread-safe: `LLMEngine` runs it on its own thread; `LLM` runs it on the caller's.
public final class EngineCore: EngineClient {
    public let runner: ModelRunner
    public let tokenizer: any Tokenizer
    let scheduler: Scheduler
    private let plans: BroadcastQueue?
    private let eosTokenIDs: Set<Int>
    private var requests: [String: EngineRequest] = [:]
    private var metrics: [String: RequestMetrics] = [:]
    private var lastTokenTime: [String: UInt64] = [:]
    private var sampler = Sampler()
    /// The last step's shape.
    public private(set) var lastStep = StepStats()
    private var promptTokensComputed = 0
    private var tokensGenerated = 0
    /// Set once the engine failed or shut down; every later call throws it.
    public private(set) var deadReason: String?
    /// The requests still waiting, never scheduled, when a step failed (in arrival order); empty otherwise.
    public private(set) var unstartedAtFailure: [UnstartedRequest] = []
    /// Micro-batches launched whose logits have not been sampled, oldest first (at most one per pipeline stage).
    private var inFlight: [LaunchedBatch] = []
    /// Seconds the driver has waited for the last stage's logits (its share of the pipeline's bubble).
    public private(set) var logitsWaitSeconds = 0.0

    /// A micro-batch in the pipeline.
    private struct LaunchedBatch {
        let scheduled: [(request: EngineRequest, newTokens: Int)]
        let sequences: [ScheduledSequence]
        let logits: PendingLogits
        let preempted: Int
        let start: UInt64
        let planSent: UInt64
    }

    /// - Parameter plans: the queue to the other ranks of the model's group (nil for one rank).
    public init(runner: ModelRunner, tokenizer: any Tokenizer, eosTokenIDs: Set<Int>, scheduler config: SchedulerConfig, prefixCaching: Bool, plans: BroadcastQueue?) {
        self.runner = runner
        self.tokenizer = tokenizer
        self.eosTokenIDs = eosTokenIDs
        self.plans = plans
        scheduler = Scheduler(
            config: config,
            cache: KVCacheManager(blockCount: runner.cache.blockCount, layout: runner.cache.layout, prefixCaching: prefixCaching))
    }

    /// Why a rank of the model's group is gone (it died, aborted or left), noticed by the liveness monitors
    /// even between steps; nil while every rank is here. Any thread may read it.
    public var groupFailure: (any Error)? { runner.groups.failure ?? plans?.lostMember }

    /// Requests not yet finished.
    public var unfinishedCount: Int { requests.count }
    /// Blocks held by requests, and the pool's size.
    public var blockUsage: (used: Int, total: Int) { (scheduler.cache.pool.usedCount, scheduler.cache.pool.blockCount) }
    /// Prompt tokens looked up in the prefix cache, and those found.
    public var prefixCacheTokens: (queried: Int, hits: Int) { (scheduler.cache.queriedTokens, scheduler.cache.hitTokens) }

    /// The counters now.
    public var stats: EngineStats {
        EngineStats(
            running: scheduler.running.count, waiting: scheduler.waiting.count, usedBlocks: scheduler.cache.pool.usedCount,
            totalBlocks: scheduler.cache.pool.blockCount, prefixQueriedTokens: scheduler.cache.queriedTokens, prefixHitTokens: scheduler.cache.hitTokens,
            promptTokens: promptTokensComputed, generatedTokens: tokensGenerated, preemptions: scheduler.preemptionCount)
    }

    /// This replica's counters (the one replica).
    public var replicaStats: [EngineStats] { [stats] }

    /// Accepts a request; it joins the running batch at a coming step.
    ///
    /// - Parameters:
    ///   - prompt: the prompt's text, as reported in the output.
    ///   - seed: the sampling seed when `params.seed` is nil.
    ///   - arrival: when it was first accepted (uptime nanoseconds; now when nil), for its queue time.
    /// - Throws: `GenerationError.invalidRequest` for bad parameters or an empty prompt or a token outside the
    ///   vocabulary, `EngineError.requestTooLarge` for a request that can never fit, `duplicateRequest`,
    ///   `engineDead`.
    public func add(id: String, prompt: String, promptTokenIDs: [Int], params: SamplingParams, seed: UInt64? = nil, arrival: UInt64? = nil) throws {
        if let deadReason { throw EngineError.engineDead(deadReason) }
        try check(id: id, promptTokenIDs: promptTokenIDs, params: params)
        guard requests[id] == nil else { throw EngineError.duplicateRequest(id: id) }
        let config = runner.model.config
        let processor = OutputProcessor(
            prompt: prompt, promptCount: promptTokenIDs.count, params: params, tokenizer: tokenizer, eosTokenIDs: eosTokenIDs,
            contextLimit: config.maxPositions)
        let request = EngineRequest(
            id: id, promptTokenIDs: promptTokenIDs, params: params, seed: params.seed ?? seed ?? UInt64.random(in: 0...UInt64.max),
            arrival: arrival ?? DispatchTime.now().uptimeNanoseconds, output: processor)
        requests[id] = request
        metrics[id] = RequestMetrics(promptTokens: promptTokenIDs.count)
        scheduler.add(request)
    }

    /// Checks that a request can ever run here (`RequestLimits.check`); any thread may call it.
    public func check(id: String, promptTokenIDs: [Int], params: SamplingParams) throws {
        try runner.limits.check(id: id, promptTokenIDs: promptTokenIDs, params: params)
    }

    /// Ends a request now, freeing its blocks; its last output (finish reason `abort`), or nil for an unknown id.
    public func abort(_ id: String) -> EngineOutput? {
        guard let request = requests[id] else { return nil }
        request.output.abort()
        return finish(request, newTokens: [])
    }

    /// Runs one step: nothing when no request is waiting or running and no batch is in flight.
    ///
    /// - Returns: the progress of every request that produced a token or finished.
    /// - Throws: the step's error (a `CommError` when a rank died); the engine is dead afterwards and every
    ///   unfinished request is dropped (the caller reports the error to each, or adds those in
    ///   `unstartedAtFailure` to another engine).
    public func step() throws -> [EngineOutput] {
        if let deadReason { throw EngineError.engineDead(deadReason) }
        guard scheduler.hasWork || !inFlight.isEmpty else { return [] }
        return try failing(runStep)
    }

    /// One step in lockstep with the other replicas, whose MoE layers' collectives span them all (expert
    /// parallelism across replicas; every replica takes this step at once): launches exactly one micro-batch — an
    /// empty one when nothing can be scheduled, so that this replica's ranks still join every collective — then
    /// completes the oldest batch in flight once the pipeline is full or nothing was launched. Each replica's
    /// stages thus run the same number of batches in the same order.
    ///
    /// - Returns and throws: as `step`.
    public func stepTogether() throws -> [EngineOutput] {
        if let deadReason { throw EngineError.engineDead(deadReason) }
        return try failing { () throws -> [EngineOutput] in
            let start = DispatchTime.now().uptimeNanoseconds
            let output = scheduleMicroBatch()
            // An empty launch still runs every stage, with no logits to wait for: nothing to complete later.
            let launched = try launch(output, start: start)
            if !output.scheduled.isEmpty { inFlight.append(launched) }
            guard !inFlight.isEmpty, inFlight.count == runner.groups.layout.pipelineParallelSize || output.scheduled.isEmpty else { return [] }
            return try completeOldest()
        }
    }

    /// Runs `body`; when it throws, the engine is dead and its requests are dropped (those never scheduled kept in
    /// `unstartedAtFailure`).
    private func failing(_ body: () throws -> [EngineOutput]) throws -> [EngineOutput] {
        do {
            return try body()
        } catch {
            deadReason = "\(error)"
            unstartedAtFailure = scheduler.waiting.filter { $0.cachedPromptTokens == nil }.map {
                UnstartedRequest(id: $0.id, prompt: $0.output.prompt, promptTokenIDs: $0.promptTokenIDs, params: $0.params, arrival: $0.arrival)
            }
            requests.removeAll()
            inFlight.removeAll()
            throw error
        }
    }

    /// Tells the workers to leave their loops (`WorkerLoop.run` returns); they re-enter it for more work. Batches
    /// still in flight (of aborted requests) are completed first, so no stage is left mid-transfer.
    public func releaseWorkers() throws {
        for batch in inFlight { _ = try batch.logits.wait() }
        inFlight.removeAll()
        try plans?.enqueue(StepPlan.shutdown.encoded())
    }

    /// Each rank of the replica's counters (`ModelRunner.counters`), by rank; the workers, in their loops, answer
    /// a `reportCounters` plan.
    public func countersPerRank() throws -> [RankCounters] {
        guard let world = runner.groups.world else { return [runner.counters] }
        try plans?.enqueue(StepPlan.reportCounters.encoded())
        return try world.allGatherObject(runner.counters)
    }

    /// Releases the workers; the engine takes no more work.
    public func shutdown() {
        if deadReason == nil {
            deadReason = "shut down"
            try? releaseWorkers()
        }
    }

    private func runStep() throws -> [EngineOutput] {
        while inFlight.count < runner.groups.layout.pipelineParallelSize {
            let start = DispatchTime.now().uptimeNanoseconds
            let output = scheduleMicroBatch()
            guard !output.scheduled.isEmpty else { break }
            inFlight.append(try launch(output, start: start))
        }
        guard !inFlight.isEmpty else { return [] }
        return try completeOldest()
    }

    /// The next micro-batch: with stages, an even share of the requests that could run and of the token budget.
    private func scheduleMicroBatch() -> SchedulerOutput {
        let depth = runner.groups.layout.pipelineParallelSize
        let active = min(scheduler.config.maxNumSeqs, scheduler.running.count + scheduler.waiting.count)
        return scheduler.schedule(
            requestCap: depth == 1 ? .max : max(1, (active + depth - 1) / depth),
            tokenBudget: depth == 1 ? nil : max(1, scheduler.config.maxNumBatchedTokens / depth))
    }

    /// Waits for the oldest batch in flight's logits and samples.
    private func completeOldest() throws -> [EngineOutput] {
        let batch = inFlight.removeFirst()
        let waitStart = DispatchTime.now().uptimeNanoseconds
        let logits = try batch.logits.wait()
        logitsWaitSeconds += Self.seconds(since: waitStart, to: DispatchTime.now().uptimeNanoseconds)
        return complete(batch, logits: logits)
    }

    /// Sends the plan of `output` and runs this rank's stage of it (on one stage, the whole forward pass).
    private func launch(_ output: SchedulerOutput, start: UInt64) throws -> LaunchedBatch {
        var tokens: [Int] = []
        tokens.reserveCapacity(output.totalTokens)
        var sequences: [ScheduledSequence] = []
        for (request, newTokens) in output.scheduled {
            let end = request.computedTokens + newTokens
            tokens += request.tokens[request.computedTokens..<end]
            sequences.append(
                ScheduledSequence(
                    tokenCount: newTokens, computedTokens: request.computedTokens, blockTable: request.blocks.map { Int32($0) },
                    wantsLogits: end == request.tokens.count))
            request.inFlight = true
            if metrics[request.id]!.queueSeconds == 0 { metrics[request.id]!.queueSeconds = Self.seconds(since: request.arrival, to: start) }
        }
        let batch = ForwardBatch(tokens: tokens, sequences: sequences)
        try plans?.enqueue(StepPlan.step(batch).encoded())
        let planSent = DispatchTime.now().uptimeNanoseconds
        let logits = try runner.execute(batch).map { PendingLogits(values: $0, work: nil) } ?? runner.receiveLogits(of: batch)
        return LaunchedBatch(
            scheduled: output.scheduled, sequences: sequences, logits: logits, preempted: output.preempted.count, start: start, planSent: planSent)
    }

    /// Samples the next token of every request of `batch` that wanted logits and reports the progress.
    private func complete(_ batch: LaunchedBatch, logits: Tensor) -> [EngineOutput] {
        var outputs: [EngineOutput] = []
        var row = 0
        let now = DispatchTime.now().uptimeNanoseconds
        for ((request, newTokens), sequence) in zip(batch.scheduled, batch.sequences) {
            request.inFlight = false
            let logitRow = sequence.wantsLogits ? row : nil
            if sequence.wantsLogits { row += 1 }
            // Aborted while its batch was in flight: its blocks are free already and nobody waits for it.
            guard requests[request.id] === request else { continue }
            if request.computedTokens < request.promptTokenIDs.count {
                promptTokensComputed += min(newTokens, request.promptTokenIDs.count - request.computedTokens)
            }
            request.computedTokens += newTokens
            guard let logitRow else { continue }
            let width = logits.shape[1]
            let values = logits.row(logitRow)
            // NaN or infinite logits (broken weights, an overflow) would sample token 0 as if it meant something.
            guard values.allSatisfy(\.isFinite) else {
                request.output.abort()
                var last = finish(request, newTokens: [])
                last.failure = .nonFiniteLogits(id: request.id, position: request.tokens.count)
                outputs.append(last)
                continue
            }
            let token = sampler.sample(
                values.baseAddress!, count: width, temperature: request.params.temperature, topK: request.params.topK, topP: request.params.topP,
                using: &request.generator)
            tokensGenerated += 1
            let logprobs = request.params.logprobs.map { [TokenLogprobs(row: UnsafeBufferPointer(values), sampled: token, count: $0)] } ?? []
            request.append(token)
            request.output.accept(token)
            if let last = lastTokenTime[request.id] {
                metrics[request.id]!.interTokenSeconds.append(Self.seconds(since: last, to: now))
            } else {
                metrics[request.id]!.timeToFirstTokenSeconds = Self.seconds(since: request.arrival, to: now)
            }
            lastTokenTime[request.id] = now
            if request.output.finishReason != nil {
                var last = finish(request, newTokens: [token])
                last.logprobs = logprobs
                outputs.append(last)
            } else {
                outputs.append(
                    EngineOutput(
                        requestID: request.id, textDelta: request.output.takeReadyText(), newTokenIDs: [token], finishReason: nil, final: nil,
                        logprobs: logprobs))
            }
        }
        lastStep = StepStats(
            scheduledRequests: batch.scheduled.count, scheduledTokens: batch.sequences.reduce(0) { $0 + $1.tokenCount },
            usedBlocks: scheduler.cache.pool.usedCount, totalBlocks: scheduler.cache.pool.blockCount, preemptions: batch.preempted,
            scheduleSeconds: Self.seconds(since: batch.start, to: batch.planSent),
            stepSeconds: Self.seconds(since: batch.start, to: DispatchTime.now().uptimeNanoseconds))
        return outputs
    }

    private func finish(_ request: EngineRequest, newTokens: [Int]) -> EngineOutput {
        scheduler.remove(request)
        requests[request.id] = nil
        lastTokenTime[request.id] = nil
        var metric = metrics.removeValue(forKey: request.id)!
        metric.outputTokens = request.outputCount
        metric.cachedPromptTokens = request.cachedPromptTokens ?? 0
        metric.preemptions = request.preemptions
        metric.endToEndSeconds = Self.seconds(since: request.arrival, to: DispatchTime.now().uptimeNanoseconds)
        let processor = request.output
        let result = RequestOutput(
            prompt: processor.prompt, promptTokenIDs: request.promptTokenIDs, tokenIDs: processor.tokenIDs, text: processor.text,
            finishReason: processor.finishReason!)
        return EngineOutput(
            requestID: request.id, textDelta: processor.takeReadyText(), newTokenIDs: newTokens, finishReason: processor.finishReason,
            final: (result, metric))
    }

    private static func seconds(since start: UInt64, to end: UInt64) -> Double { Double(end &- start) / 1e9 }
}
