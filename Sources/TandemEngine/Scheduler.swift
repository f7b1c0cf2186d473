/// The limits a scheduler works within each step.
public struct SchedulerConfig: Sendable, Equatable, Codable {
    /// Most tokens (prompt chunks plus decodes) in one step.
    public var maxNumBatchedTokens: Int
    /// Most requests running at once.
    public var maxNumSeqs: Int

    /// vLLM's defaults for a throughput-oriented engine: 2,048 tokens, 64 sequences.
    public init(maxNumBatchedTokens: Int = 2048, maxNumSeqs: Int = 64) {
        self.maxNumBatchedTokens = maxNumBatchedTokens
        self.maxNumSeqs = maxNumSeqs
    }
}

/// What one step runs: each request with the tokens it computes, in batch order.
struct SchedulerOutput {
    var scheduled: [(request: EngineRequest, newTokens: Int)] = []
    /// Requests that lost their blocks this step (sent back to the front of the queue).
    var preempted: [EngineRequest] = []
    var totalTokens: Int { scheduled.reduce(0) { $0 + $1.newTokens } }
}

/// Chooses each step's work (vLLM V1's scheduler): running requests first — each decode one token, an
/// unfinished prompt its next chunk — then waiting ones in arrival order, all under a token budget and a cap
/// on running requests. A long prompt is split over steps (chunked prefill), so decodes are never starved.
/// When blocks run out, the newest running request is preempted: its blocks are freed and it is recomputed
/// later (vLLM's recompute mode). With pipeline stages, requests in a micro-batch still in flight are neither
/// scheduled again nor preempted until their batch completes (vLLM's batch queue). Runs on the engine thread only.
final class Scheduler {
    let config: SchedulerConfig
    let cache: KVCacheManager
    private(set) var waiting: [EngineRequest] = []
    private(set) var running: [EngineRequest] = []
    /// Preemptions since the engine started.
    private(set) var preemptionCount = 0

    init(config: SchedulerConfig, cache: KVCacheManager) {
        self.config = config
        self.cache = cache
    }

    var hasWork: Bool { !waiting.isEmpty || !running.isEmpty }

    func add(_ request: EngineRequest) {
        waiting.append(request)
    }

    /// Takes `request` out of the queues and frees its blocks.
    func remove(_ request: EngineRequest) {
        if let index = running.firstIndex(where: { $0 === request }) { running.remove(at: index) }
        if let index = waiting.firstIndex(where: { $0 === request }) { waiting.remove(at: index) }
        cache.free(request)
    }

    /// The next batch: at most `requestCap` requests (a pipeline's micro-batch takes its share of the running
    /// requests, so the batches in flight are even and no stage waits on a lopsided one).
    func schedule(requestCap: Int = .max, tokenBudget: Int? = nil) -> SchedulerOutput {
        var output = SchedulerOutput()
        var budget = min(tokenBudget ?? config.maxNumBatchedTokens, config.maxNumBatchedTokens)
        var index = 0
        while index < running.count && budget > 0 && output.scheduled.count < requestCap {
            let request = running[index]
            guard !request.inFlight else {
                index += 1
                continue
            }
            let newTokens = min(request.tokens.count - request.computedTokens, budget)
            var admitted = true
            while !cache.allocate(request, newTokens: newTokens) {
                // The newest request not in flight (this one at worst: it comes at or after `index`).
                let victim = running.remove(at: running.lastIndex { !$0.inFlight }!)
                preempt(victim)
                output.preempted.append(victim)
                if victim === request {
                    admitted = false
                    break
                }
            }
            guard admitted else { break }
            output.scheduled.append((request, newTokens))
            budget -= newTokens
            index += 1
        }
        // New work only when nothing had to give way this step.
        guard output.preempted.isEmpty else { return output }
        while let request = waiting.first, budget > 0, running.count < config.maxNumSeqs, output.scheduled.count < requestCap {
            let prefix = cache.cachedPrefix(request)
            let newTokens = min(request.tokens.count - prefix.count * cache.blockSize, budget)
            guard cache.allocate(request, newTokens: newTokens, prefix: prefix) else { break }
            if request.cachedPromptTokens == nil { request.cachedPromptTokens = min(prefix.count * cache.blockSize, request.promptTokenIDs.count) }
            waiting.removeFirst()
            running.append(request)
            output.scheduled.append((request, newTokens))
            budget -= newTokens
        }
        return output
    }

    private func preempt(_ request: EngineRequest) {
        cache.free(request)
        request.preemptions += 1
        preemptionCount += 1
        waiting.insert(request, at: 0)
    }
}
