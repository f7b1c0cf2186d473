import Dispatch
import TandemComm
import TandemModel
import TandemTensor

/// One rank's model and KV cache: runs its pipeline stage of a forward batch (vLLM's model runner) and hands the
/// result on — hidden states to the next stage, the last stage's logits to the driver. Every rank of the replica
/// has one.
public final class ModelRunner {
    /// This rank's part of the model.
    public let model: any CausalLanguageModel
    /// This rank's KV blocks for its stage's layers (the same block ids on every rank).
    public let cache: PagedKVCache
    /// The groups of the replica this rank belongs to.
    public let groups: ReplicaGroups
    /// Seconds this rank has spent in its stage's forward passes (its tensor-parallel collectives included, the
    /// wait for the previous stage's hidden states not), since loading.
    public private(set) var computeSeconds = 0.0

    /// This rank's counters now.
    public var counters: RankCounters { RankCounters(computeSeconds: computeSeconds, expertTraffic: model.expertTraffic) }

    /// Allocates the KV cache. Every rank of every replica must call this together: the block count is the
    /// smallest any rank can afford, agreed over them all.
    ///
    /// - Parameter groups: the replica's groups (nil: tensor parallelism over the model's group only).
    /// - Throws: `EngineError.invalidCacheConfig`, or `CommError` when the agreement fails.
    public init(model: any CausalLanguageModel, groups: ReplicaGroups? = nil, cacheConfig: CacheConfig, maxNumSeqs: Int, localRanks: Int) throws {
        try cacheConfig.validate()
        let groups = groups ?? ReplicaGroups(tensor: model.group)
        let dtype = cacheConfig.dtype ?? model.weightDType
        let layout = PagedKVLayout(
            blockSize: cacheConfig.blockSize, keyValueHeads: model.keyValueHeadsPerRank, headDimension: model.config.headDimension, dtype: dtype)
        let perBlock = PagedKVCache.bytesPerBlock(layerCount: model.part.layers.count, layout: layout)
        let fullBatch = maxNumSeqs * layout.blocks(holding: model.config.maxPositions)
        var blocks = try cacheConfig.blocks(bytesPerBlock: perBlock, fullBatchBlocks: fullBatch, localRanks: localRanks)
        // Agreed over every replica too, so that one check of a request holds on whichever replica runs it.
        if let world = groups.all ?? groups.world { blocks = try world.allGatherObject(blocks).min()! }
        self.model = model
        self.groups = groups
        cache = try model.makeKVCache(blockCount: blocks, blockSize: cacheConfig.blockSize, dtype: dtype)
    }

    /// What a request must fit to run here (the vocabulary, the context, this pool); never changes.
    public var limits: RequestLimits {
        RequestLimits(
            vocabularySize: model.config.vocabularySize, maxPositions: model.config.maxPositions, layout: cache.layout, blockCount: cache.blockCount)
    }

    /// Runs this rank's stage of `batch`: takes the previous stage's hidden states (after the first stage), runs
    /// the layers, and starts sending the result on — hidden states to the next stage, or from the last stage's
    /// tp rank 0 the logits to the driver.
    ///
    /// - Returns: the logits on the driver when it holds the whole pipeline (one stage); nil on every other rank
    ///   and with several stages (the driver takes them with `receiveLogits`).
    public func execute(_ batch: ForwardBatch) throws -> Tensor? {
        let links = groups.links
        let input = groups.isFirstStage ? nil : try links!.receiveHidden(rows: batch.tokens.count, width: model.config.hiddenSize)
        let start = DispatchTime.now().uptimeNanoseconds
        let output = try model.forward(batch, cache: cache, hidden: input, logitsTo: 0)
        computeSeconds += Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        switch output {
        case let .hidden(hidden):
            try links!.sendHidden(hidden)
            return nil
        case let .logits(logits):
            guard let links else { return logits }
            if let logits, batch.logitRows > 0 { try links.sendLogits(logits) }
            return nil
        }
    }

    /// Waits until this rank's last send to another stage has been taken (call before leaving the replica, so no
    /// peer is left mid-receive).
    ///
    /// - Throws: `CommError` when that send failed.
    public func flush() throws {
        try groups.links?.flush()
    }

    /// On the driver with several stages: starts receiving the logits of `batch` (passed to `execute` already)
    /// from the last stage. Call it once per batch, in the order the batches were executed.
    public func receiveLogits(of batch: ForwardBatch) -> PendingLogits {
        guard let links = groups.links, batch.logitRows > 0 else {
            return PendingLogits(values: Tensor(zeros: [0, model.config.vocabularySize], dtype: .float32), work: nil)
        }
        return links.receiveLogits(rows: batch.logitRows, vocabularySize: model.config.vocabularySize)
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
            case .shutdown: return try runner.flush()
            case .reportCounters: _ = try runner.groups.world!.allGatherObject(runner.counters)
            case let .step(batch): _ = try runner.execute(batch)
            }
        }
    }
}
