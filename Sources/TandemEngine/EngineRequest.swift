import TandemTensor

/// One request inside the engine (vLLM's `Request`): its tokens so far, how many of them the KV cache holds,
/// its blocks. Owned by the engine thread; the scheduler's queues say where it stands.
final class EngineRequest {
    let id: String
    let promptTokenIDs: [Int]
    let params: SamplingParams
    /// When `add` accepted it (uptime nanoseconds).
    let arrival: UInt64
    /// Prompt, then generated tokens.
    private(set) var tokens: [Int]
    /// Positions whose keys and values are in the cache.
    var computedTokens = 0
    /// The block table: block i holds positions i·blockSize ..< (i+1)·blockSize.
    var blocks: [Int] = []
    /// Leading blocks already registered in the prefix cache.
    var registeredBlocks = 0
    /// Identities of the full blocks of `tokens` worked out so far (a prefix of them).
    var blockHashes: [BlockHash] = []
    /// Prompt tokens found in the prefix cache when it was first scheduled.
    var cachedPromptTokens: Int?
    /// Times it lost its blocks to a newer request's need and was sent back to the queue.
    var preemptions = 0
    /// Whether a micro-batch holding it is still in the pipeline (its next tokens are not known yet).
    var inFlight = false
    var generator: SeededGenerator
    let output: OutputProcessor

    init(id: String, promptTokenIDs: [Int], params: SamplingParams, seed: UInt64, arrival: UInt64, output: OutputProcessor) {
        self.id = id
        self.promptTokenIDs = promptTokenIDs
        self.params = params
        self.arrival = arrival
        tokens = promptTokenIDs
        generator = SeededGenerator(seed: seed)
        self.output = output
    }

    /// Tokens generated so far.
    var outputCount: Int { tokens.count - promptTokenIDs.count }

    func append(_ token: Int) { tokens.append(token) }
}
