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

    /// What a request must fit to run here (the vocabulary, the context, this pool); never changes.
    public var limits: RequestLimits {
        RequestLimits(
            vocabularySize: model.config.vocabularySize, maxPositions: model.config.maxPositions, layout: cache.layout, blockCount: cache.blockCount)
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
