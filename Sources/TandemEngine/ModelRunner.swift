import TandemComm
import TandemModel
import TandemTensor

/// One rank's model and KV cache: runs a forward batch (vLLM's model runner). Every rank of the model's group
/// has one; the driver's also receives the logits.
public final class ModelRunner {
    /// This rank's part of the model.
    public let model: any CausalLanguageModel
    /// This rank's KV blocks (the same block ids on every rank).
    public let cache: PagedKVCache

    /// Allocates the KV cache. Every rank of the group must call this together: the block count is the
    /// smallest any rank can afford, agreed over the group.
    ///
    /// - Throws: `EngineError.invalidCacheConfig`, or `CommError` when the agreement fails.
    public init(model: any CausalLanguageModel, cacheConfig: CacheConfig, maxNumSeqs: Int, localRanks: Int) throws {
        try cacheConfig.validate()
        let dtype = cacheConfig.dtype ?? model.weightDType
        let layout = PagedKVLayout(
            blockSize: cacheConfig.blockSize, keyValueHeads: model.keyValueHeadsPerRank, headDimension: model.config.headDimension, dtype: dtype)
        let perBlock = PagedKVCache.bytesPerBlock(layerCount: model.config.layerCount, layout: layout)
        let fullBatch = maxNumSeqs * layout.blocks(holding: model.config.maxPositions)
        var blocks = try cacheConfig.blocks(bytesPerBlock: perBlock, fullBatchBlocks: fullBatch, localRanks: localRanks)
        if let group = model.group.group { blocks = try group.allGatherObject(blocks).min()! }
        self.model = model
        cache = try model.makeKVCache(blockCount: blocks, blockSize: cacheConfig.blockSize, dtype: dtype)
    }

    /// Checks that a request can ever run here: its parameters, its tokens, its length against the context and
    /// its blocks against the whole pool. Reads only what never changes, so any thread may call it, and every
    /// rank of the group gives the same answer.
    ///
    /// - Throws: `GenerationError` for bad parameters, an empty prompt or a token outside the vocabulary;
    ///   `EngineError.requestTooLarge` with the numbers.
    public func check(id: String, promptTokenIDs: [Int], params: SamplingParams) throws {
        try params.validate()
        let config = model.config
        guard !promptTokenIDs.isEmpty else { throw GenerationError.invalidRequest("the prompt of request \(id) encodes to no tokens") }
        if let bad = promptTokenIDs.first(where: { !(0..<config.vocabularySize).contains($0) }) {
            throw GenerationError.tokenOutOfVocabulary(token: bad, vocabularySize: config.vocabularySize)
        }
        if let bad = params.stopTokenIDs.first(where: { $0 >= config.vocabularySize }) {
            throw GenerationError.invalidRequest(
                "stop token id \(bad) of request \(id) is outside the vocabulary (0..<\(config.vocabularySize)); it could never be generated")
        }
        guard params.maxTokens < config.maxPositions else {
            throw GenerationError.invalidRequest(
                "max_tokens \(params.maxTokens) of request \(id) is not below the model's context of \(config.maxPositions) positions "
                    + "(max_position_embeddings); a completion stops when prompt and output fill the context")
        }
        guard promptTokenIDs.count < config.maxPositions else {
            throw EngineError.requestTooLarge(
                id: id, "its prompt has \(promptTokenIDs.count) tokens; the model's context is \(config.maxPositions) (max_position_embeddings)")
        }
        let positions = min(promptTokenIDs.count + params.maxTokens, config.maxPositions)
        let needed = cache.layout.blocks(holding: positions)
        guard needed <= cache.blockCount else {
            throw EngineError.requestTooLarge(
                id: id,
                "\(promptTokenIDs.count) prompt + up to \(params.maxTokens) new tokens need \(needed) KV blocks of \(cache.layout.blockSize) positions; "
                    + "the pool has \(cache.blockCount) (give more --kv-cache-memory or fewer max_tokens)")
        }
    }

    /// Runs `batch`; logits on group rank 0, nil elsewhere.
    public func execute(_ batch: ForwardBatch) throws -> Tensor? {
        try model.forward(batch, cache: cache, logitsTo: 0)
    }
}

/// The loop of a rank other than the driver (vLLM's worker busy loop): read each step's plan from the broadcast
/// queue and run it, until the driver says stop or the group fails.
public enum WorkerLoop {
    /// Runs plans until a shutdown plan.
    ///
    /// - Throws: the first error of a step (a `CommError` when a peer died), or the queue's error.
    public static func run(_ runner: ModelRunner, plans: BroadcastQueue) throws {
        while true {
            switch try StepPlan(decoding: plans.dequeue()) {
            case .shutdown: return
            case let .step(batch): _ = try runner.execute(batch)
            }
        }
    }
}
