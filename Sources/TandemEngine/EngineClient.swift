/// What `LLM` and `LLMEngine` drive requests through (vLLM's engine-core client): one replica's `EngineCore`
/// stepped in this thread, or `DataParallelEngine`, the front end of several replicas. Both take requests, step,
/// and report each request's progress alike. Not thread-safe: one thread calls it.
public protocol EngineClient: AnyObject {
    /// This rank's model runner (the first replica's driver: its model config and request limits).
    var runner: ModelRunner { get }
    /// Requests not yet finished.
    var unfinishedCount: Int { get }
    /// The counters now, summed over the replicas.
    var stats: EngineStats { get }
    /// Each replica's counters, by replica (one entry without data parallelism).
    var replicaStats: [EngineStats] { get }
    /// The shape of the last step this rank ran.
    var lastStep: StepStats { get }
    /// Prompt tokens looked up in the prefix cache, and those found (over the replicas).
    var prefixCacheTokens: (queried: Int, hits: Int) { get }
    /// Seconds this rank's driver has waited for its last pipeline stage's logits.
    var logitsWaitSeconds: Double { get }
    /// Why a rank (or replica) is gone, noticed between steps; nil while all are here. Any thread may read it.
    var groupFailure: (any Error)? { get }
    /// The requests that had not started (never scheduled, no output) when a step failed; empty otherwise.
    var unstartedAtFailure: [UnstartedRequest] { get }

    /// Accepts a request (see `EngineCore.add`).
    func add(id: String, prompt: String, promptTokenIDs: [Int], params: SamplingParams, seed: UInt64?, arrival: UInt64?) throws
    /// Checks that a request can ever run here; any thread may call it.
    func check(id: String, promptTokenIDs: [Int], params: SamplingParams) throws
    /// Ends a request: its last output now, or nil when it is unknown here or its last output comes with a
    /// later step (a request on another replica).
    func abort(_ id: String) -> EngineOutput?
    /// Runs a step; the progress of every request that produced a token or finished.
    func step() throws -> [EngineOutput]
    /// Each rank's counters (forward seconds, expert traffic) since loading, by rank of the launched world
    /// (replica after replica); the workers must be in their loops (spawned ranks).
    func countersPerRank() throws -> [RankCounters]
    /// Every rank leaves the worker loop it runs for this call (batches in flight completed first).
    func releaseWorkers() throws
    /// Releases the workers; takes no more work.
    func shutdown()
}

