import Dispatch
import Foundation
import TandemComm
import TandemModel
import TandemTokenizer
import TandemParallel
import TandemTensor

/// Offline generation, as vLLM's `LLM`: load a checkpoint directory, then `generate` completions for a batch of
/// prompts. A client of the engine: `generate` submits every prompt to an `EngineCore` and steps it until all
/// are done (continuous batching over a paged KV cache with prefix caching).
///
/// Tensor, pipeline and data parallelism come two ways. `init(config:tensorParallelSize:)` makes this process the
/// driver and spawns the other tp × `config.pipelineParallelSize` × `config.dataParallelSize` − 1 ranks itself (`tandem worker` processes that receive
/// the config, report whether they loaded, and run the worker loop until this `LLM` is shut down) — as vLLM's
/// `LLM(tensor_parallel_size=T, pipeline_parallel_size=P)`. Or every rank of a group that already exists
/// (`tandem launch`, or threads) constructs an `LLM` with `init(config:world:)` (or `init(config:group:)` for
/// tensor parallelism alone) and calls `generate` with the same prompts (SPMD, as torch.distributed programs run):
/// rank 0 drives and the other ranks run the worker loop for the call; every rank returns rank 0's outputs.
/// With data parallelism rank 0 is also the front end (`DataParallelEngine`) that routes each request to a replica,
/// and every other replica's first rank drives its replica (`ReplicaDriver`).
public final class LLM {
    /// This rank's part of the model and its KV cache.
    public let runner: ModelRunner
    /// This rank's part of the model.
    public var model: any CausalLanguageModel { runner.model }
    /// The checkpoint's tokenizer.
    public let tokenizer: any Tokenizer
    /// Seconds spent loading the tokenizer and this rank's weights (and, with spawned workers, starting them).
    public let loadSeconds: Double
    /// Where the time of the last `generate` went.
    public private(set) var lastTimings = GenerationTimings()
    /// Seconds between statistics lines on standard error while `generate` runs (vLLM's `--log-stats`); nil: none.
    public var statsInterval: Double?

    /// Prompt tokens found in the prefix cache since loading (rank 0; 0 on the other ranks).
    public var prefixCacheHitTokens: Int { engine?.prefixCacheTokens.hits ?? 0 }
    /// Seconds the driver has waited for the last pipeline stage's logits since loading (rank 0; 0 elsewhere).
    public var logitsWaitSeconds: Double { engine?.logitsWaitSeconds ?? 0 }
    /// Each data-parallel replica's counters (rank 0; empty on the other ranks).
    public var replicaStats: [EngineStats] { engine?.replicaStats ?? [] }
    /// Each step of the last `generate` (rank 0; empty on the other ranks).
    public private(set) var lastSteps: [StepStats] = []
    /// End-of-sequence ids from config.json and generation_config.json.
    public let eosTokenIDs: Set<Int>
    /// Bytes of weights each rank holds, by rank (reported by every rank once it loaded).
    public let weightBytesPerRank: [Int]
    /// The worker processes this `LLM` spawned (nil when it spawned none).
    public let spawnedRanks: SpawnedRanks?

    /// The replica's groups: every rank, this rank's tensor-parallel group and pipeline links.
    public var groups: ReplicaGroups { runner.groups }
    /// What requests go through, on global rank 0: its replica's `EngineCore`, or with data parallelism the front
    /// end of the replicas (`DataParallelEngine`); nil on the other ranks. Driving it directly (or through
    /// `LLMEngine(core:)`) instead of `generate`, the other ranks of an SPMD group call `runWorkerLoop()`, and
    /// `releaseWorkers()` lets them return.
    public let engine: (any EngineClient)?
    /// This rank's replica's engine, on the replica's first rank; nil on the other ranks.
    private let core: EngineCore?
    /// Whether the replicas step together (expert parallelism across them).
    private let stepsReplicasTogether: Bool
    /// On the first rank of a replica other than rank 0's: its line to the front end.
    private let driverLink: ReplicaLink?
    /// Each step's plan from the replica's driver to its other ranks (nil for a replica of one rank).
    let plans: BroadcastQueue?

    /// Loads `config.model` split `tensorParallelSize` ways within each of `config.pipelineParallelSize` stages:
    /// in this process alone for one rank; for more, this process is rank 0 and spawns ranks 1..<tp·pp as
    /// `workerProgram`, which must run `LLM.runSpawnedWorker()` (`tandem worker` does). Returns once every rank has
    /// loaded its part.
    ///
    /// - Throws: `ParallelConfigError` or `ModelLoadError` for a layout the model cannot take (before any process
    ///   starts), `LaunchError` when a worker cannot start or ends before joining, `EngineError.rankFailed` when a
    ///   worker could not load (its error), `ModelLoadError` for the checkpoint here, `CommError`.
    public convenience init(
        config: EngineConfig, tensorParallelSize: Int, workerProgram: WorkerProgram = .tandem, progress: ((Int, Int) -> Void)? = nil
    ) throws {
        guard tensorParallelSize >= 1 else { throw ParallelConfigError.nonPositive(name: "tensorParallelSize", value: tensorParallelSize) }
        let start = DispatchTime.now().uptimeNanoseconds
        // Refuse a layout the model cannot take before starting any process.
        _ = try Self.partition(config, tensorParallelSize: tensorParallelSize)
        guard config.dataParallelSize >= 1 else { throw ParallelConfigError.nonPositive(name: "dataParallelSize", value: config.dataParallelSize) }
        let worldSize = config.worldSize(tensorParallelSize: tensorParallelSize)
        guard worldSize > 1 else {
            try self.init(config: config, groups: .single, spawned: nil, progress: progress)
            return
        }
        let ranks = try SpawnedRanks(
            worldSize: worldSize, program: try workerProgram.resolvedPath(), arguments: workerProgram.arguments,
            options: try ProcessGroupOptions.fromEnvironment())
        do {
            var shared = config
            shared.localRanks = shared.localRanks ?? worldSize
            _ = try ranks.group.broadcastObject(shared, source: 0)
            let groups = try ReplicaGroups(
                world: ranks.group, pipelineParallelSize: shared.pipelineParallelSize, dataParallelSize: shared.dataParallelSize,
                expertDispatch: shared.expertPlacement.map { _ in shared.expertDispatch }, activationSync: shared.activationSync)
            try self.init(config: shared, groups: groups, spawned: ranks, progress: progress, startedAt: start)
        } catch {
            ranks.stop()
            throw Self.explained(error, ranks)
        }
    }

    /// `init(config:tensorParallelSize:workerProgram:)` with the defaults for everything but the checkpoint.
    public convenience init(model: String, tensorParallelSize: Int = 1, workerProgram: WorkerProgram = .tandem) throws {
        try self.init(config: EngineConfig(model: model), tensorParallelSize: tensorParallelSize, workerProgram: workerProgram)
    }

    /// Loads `config.model` as this rank of `group`; every rank of the group calls this together (they report
    /// whether they loaded, agree on the KV cache size and set up the plan queue), then calls `generate` with
    /// the same prompts.
    ///
    /// - Throws: `ModelLoadError` for the checkpoint, `EngineError.rankFailed` when another rank could not load,
    ///   `CommError` when the group fails.
    public convenience init(config: EngineConfig, group: TensorParallelGroup, progress: ((Int, Int) -> Void)? = nil) throws {
        guard config.pipelineParallelSize == 1, config.dataParallelSize == 1 else {
            throw ParallelConfigError.invalidPartition(
                "init(config:group:) runs tensor parallelism only; for pipelineParallelSize \(config.pipelineParallelSize) and dataParallelSize \(config.dataParallelSize) use init(config:world:)")
        }
        // The group all-reduces as the config says.
        let synced = group.group.map { TensorParallelGroup($0, activationSync: config.activationSync) } ?? group
        try self.init(config: config, groups: ReplicaGroups(tensor: synced), spawned: nil, progress: progress)
    }

    /// Loads `config.model` as this rank of `world`, laid out as `config.dataParallelSize` replicas of
    /// `config.pipelineParallelSize` stages of `world.worldSize / (pp · dp)` tensor-parallel ranks (vLLM's order:
    /// tp ranks consecutive, then stages, then replicas); every rank of `world` calls this together, then calls
    /// `generate` with the same prompts.
    ///
    /// - Throws: `ParallelConfigError` for sizes that do not fit the world or the model, `ModelLoadError` for the
    ///   checkpoint, `EngineError.rankFailed` when another rank could not load, `CommError` when the group fails.
    public convenience init(config: EngineConfig, world: ProcessGroup, progress: ((Int, Int) -> Void)? = nil) throws {
        let groups = try ReplicaGroups(
            world: world, pipelineParallelSize: config.pipelineParallelSize, dataParallelSize: config.dataParallelSize,
            expertDispatch: config.expertPlacement.map { _ in config.expertDispatch }, activationSync: config.activationSync)
        do {
            try self.init(config: config, groups: groups, spawned: nil, progress: progress)
        } catch {
            groups.shutdown()
            throw error
        }
    }

    /// The layers of each pipeline stage of `config.model` (`TANDEM_PP_LAYER_PARTITION` or vLLM's split), after
    /// checking that `tensorParallelSize` splits its heads, that expert parallelism, if asked for, has experts
    /// to place, and that quantization, asked for or stored (GGUF blocks), keeps every rank's rows whole blocks.
    ///
    /// - Throws: `ModelLoadError` for the checkpoint's config or a tp size that does not split it (or its blocks),
    ///   or expert parallelism on a dense model, `ParallelConfigError` for stages the layers cannot fill,
    ///   `ConfigError` for a malformed partition variable.
    public static func partition(_ config: EngineConfig, tensorParallelSize: Int) throws -> PipelinePartition {
        let (model, storedBlocks) = try ModelFiles.configAndStoredBlocks(config.model)
        return try checkLayout(config, model: model, storedBlocks: storedBlocks, tensorParallelSize: tensorParallelSize).partition
    }

    /// `partition(_:tensorParallelSize:)` for a model whose config and stored blocks are read, with the layers
    /// whose rows on each rank are not whole blocks of the asked or stored k-quant and are stored as q8_0 instead
    /// (`ModelConfig.checkQuantization`).
    private static func checkLayout(
        _ config: EngineConfig, model: ModelConfig, storedBlocks: WeightQuantization?, tensorParallelSize: Int
    ) throws -> (partition: PipelinePartition, storedAsQ8: [String]) {
        try model.checkTensorParallel(tensorParallelSize, path: config.model)
        if config.expertPlacement != nil { try model.checkExpertParallel(path: config.model) }
        var storedAsQ8: [String] = []
        if let quantization = config.quantization ?? storedBlocks {
            storedAsQ8 = try model.checkQuantization(
                quantization, tensorParallelSize: tensorParallelSize, expertsWhole: config.expertPlacement != nil, path: config.model)
        }
        return (try PipelinePartition.fromEnvironment(layerCount: model.layerCount, stages: config.pipelineParallelSize), storedAsQ8)
    }

    /// `init(config:group:)` with the configuration's fields as arguments.
    public convenience init(
        model directory: String, group: TensorParallelGroup, threads: Int? = nil, cache: CacheConfig = CacheConfig(),
        scheduler: SchedulerConfig = SchedulerConfig(), localRanks: Int? = nil, precision: ComputePrecision = .float32,
        progress: ((Int, Int) -> Void)? = nil
    ) throws {
        try self.init(
            config: EngineConfig(model: directory, precision: precision, threads: threads, cache: cache, scheduler: scheduler, localRanks: localRanks),
            group: group, progress: progress)
    }

    private init(
        config: EngineConfig, groups: ReplicaGroups, spawned: SpawnedRanks?, progress: ((Int, Int) -> Void)?,
        startedAt start: UInt64 = DispatchTime.now().uptimeNanoseconds
    ) throws {
        // BLAS's count is the process's (OpenBLAS keeps one); the model's own kernels get theirs at load.
        if let threads = config.threads { Matmul.setBLASThreads(threads) }
        // Each rank loads, then every rank learns whether all did (the workers' ready report), so a rank that
        // cannot load is named once rather than leaving the others waiting in a collective.
        let loaded = Result { () throws -> (any Tokenizer, any CausalLanguageModel, Set<Int>) in
            let files = try ModelFiles.open(config.model)  // a GGUF file's header and vocabulary parsed once per rank
            let tokenizer = try files.tokenizer()
            let (partition, storedAsQ8) = try Self.checkLayout(
                config, model: files.config, storedBlocks: files.storedBlocks, tensorParallelSize: groups.layout.tensorParallelSize)
            if !storedAsQ8.isEmpty && (groups.all?.rank ?? 0) == 0, let asked = config.quantization ?? files.storedBlocks {
                Log.warning(
                    "\(asked.rawValue) at tp \(groups.layout.tensorParallelSize): rows that are not whole \(asked.blockElements)-value blocks are stored "
                        + "as q8_0 (8.5 bits a weight) in every decoder layer: \(storedAsQ8.joined(separator: ", "))")
            }
            var part = ModelPart(stage: groups.stage, of: partition)
            part.expertPlacement = config.expertPlacement
            let model = try ModelRegistry.load(
                files: files, group: groups.tensor, part: part, experts: groups.experts, precision: config.precision, quantization: config.quantization, threads: config.threads ?? 1,
                progress: progress)
            return (tokenizer, model, Set(model.config.eosTokenIDs).union(try ModelFiles.generationEOS(config.model)))
        }
        let (tokenizer, model, eos): (any Tokenizer, any CausalLanguageModel, Set<Int>)
        if let world = groups.all {
            let reports = try world.allGatherObject(RankReady(failure: loaded.failureDescription, weightBytes: (try? loaded.get())?.1.weightBytes ?? 0))
            (tokenizer, model, eos) = try loaded.get()
            if let rank = reports.firstIndex(where: { $0.failure != nil }) { throw EngineError.rankFailed(rank: rank, "it could not load: \(reports[rank].failure!)") }
            weightBytesPerRank = reports.map(\.weightBytes)
        } else {
            (tokenizer, model, eos) = try loaded.get()
            weightBytesPerRank = [model.weightBytes]
        }
        self.tokenizer = tokenizer
        eosTokenIDs = eos
        spawnedRanks = spawned
        runner = try ModelRunner(
            model: model, groups: groups, cacheConfig: config.cache, maxNumSeqs: config.scheduler.maxNumSeqs,
            localRanks: config.localRanks ?? groups.all?.worldSize ?? 1)
        plans = try groups.world.map { try BroadcastQueue(world: $0, writer: 0, name: "plans") }
        let links = try groups.all.map {
            try ReplicaLink.connect(all: $0, replicaCount: groups.replicaCount, replicaSize: groups.layout.worldSize)
        } ?? []
        stepsReplicasTogether = config.stepsReplicasTogether
        core = groups.isReplicaDriver
            ? EngineCore(
                runner: runner, tokenizer: tokenizer, eosTokenIDs: eosTokenIDs, scheduler: config.scheduler, prefixCaching: config.cache.prefixCaching,
                plans: plans)
            : nil
        if groups.replica == 0 {
            engine = groups.replicaCount == 1 ? core : core.map { DataParallelEngine(local: $0, links: links, together: config.stepsReplicasTogether) }
            driverLink = nil
        } else {
            engine = nil
            driverLink = links.first
        }
        loadSeconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    }

    deinit { shutdown() }

    /// Stops the engine: spawned workers leave their loop and exit (killed after a grace period if they do not);
    /// later `generate` calls throw `EngineError.engineDead`. Idempotent; `deinit` calls it.
    public func shutdown() {
        // A front end also closes its links to the other replicas (after an SPMD call it has released them).
        if spawnedRanks != nil || engine is DataParallelEngine { engine?.shutdown() }
        plans?.shutdown()
        driverLink?.shutdown()
        runner.groups.shutdown()
        spawnedRanks?.stop()
    }

    /// Completions of `prompts`, in order.
    ///
    /// - Throws: `GenerationError` for invalid parameters or prompts, `EngineError.requestTooLarge` for a prompt
    ///   that can never fit (the context or the KV pool), `TokenizerError` for text that cannot be encoded,
    ///   `CommError` when a collective fails (the engine is dead afterwards).
    ///
    /// - Parameter onDelta: called on this thread as text is generated, with each sequence's new text — whole
    ///   characters only, and never text a stop string might still claim (as much is held back as the longest
    ///   stop string could reach); the deltas of a sequence add up to its output's `text`.
    public func generate(
        _ prompts: [String], _ params: SamplingParams = SamplingParams(), onDelta: ((StreamDelta) -> Void)? = nil
    ) throws -> [RequestOutput] {
        try run(prompts.map { ($0, try tokenizer.encode($0, addSpecialTokens: true)) }, params, onDelta: onDelta)
    }

    /// Completions of prompts given as token ids (vLLM's `prompt_token_ids`); each output's `prompt` is the
    /// ids decoded.
    public func generate(
        promptTokenIDs: [[Int]], _ params: SamplingParams = SamplingParams(), onDelta: ((StreamDelta) -> Void)? = nil
    ) throws -> [RequestOutput] {
        try run(promptTokenIDs.map { (tokenizer.decode($0, skipSpecialTokens: false), $0) }, params, onDelta: onDelta)
    }

    private func run(
        _ prompts: [(text: String, ids: [Int])], _ params: SamplingParams, onDelta: ((StreamDelta) -> Void)?
    ) throws -> [RequestOutput] {
        try params.validate()
        if spawnedRanks == nil { try checkSameRequestsOnEveryRank(prompts.map(\.ids), params) }
        guard !prompts.isEmpty else { return [] }
        // Every rank refuses the same requests before any step, so no rank is left waiting.
        for (index, prompt) in prompts.enumerated() { try runner.limits.check(id: "\(index)", promptTokenIDs: prompt.ids, params: params) }
        guard let engine else {
            // Another replica's driver for this call (the front end's requests), or a worker (its driver's plans);
            // then rank 0's outputs.
            try serve()
            return try shareOutputs(nil)
        }
        do {
            let outputs = try drive(engine, prompts, params, onDelta: onDelta)
            // Spawned workers stay in their loop for the next call; SPMD ones return from `generate` with us.
            if spawnedRanks != nil { return outputs }
            try engine.releaseWorkers()
            return try shareOutputs(outputs)
        } catch {
            // Release the workers if the group still works, so they fail or return rather than wait.
            engine.shutdown()
            throw explained(error)
        }
    }

    /// On every rank but global rank 0 of an SPMD group whose rank 0 drives `engine` itself: runs this rank's
    /// part — its replica's driver loop (the front end's requests) or the worker loop (its driver's plans) — until
    /// rank 0 calls `engine.releaseWorkers()`.
    ///
    /// - Throws: `GenerationError.invalidRequest` on rank 0 or with spawned workers (they run theirs already), the
    ///   first error of a step, `CommError` when the group fails.
    public func runWorkerLoop() throws {
        guard engine == nil, spawnedRanks == nil else {
            throw GenerationError.invalidRequest("runWorkerLoop is for the ranks of an SPMD group other than rank 0, which drives the engine")
        }
        try serve()
    }

    /// What a rank other than the front end runs until released (a spawned rank: until the engine shuts down):
    /// its replica's driver loop (on the replica's first rank; a failure releases the replica's workers), or the
    /// worker loop.
    func serve() throws {
        guard let core, let link = driverLink else { return try WorkerLoop.run(runner, plans: plans!) }
        do {
            try ReplicaDriver.run(core, link: link, together: stepsReplicasTogether)
        } catch {
            core.shutdown()
            throw error
        }
    }

    /// Submits every prompt and steps the engine until all are done.
    private func drive(
        _ engine: any EngineClient, _ prompts: [(text: String, ids: [Int])], _ params: SamplingParams, onDelta: ((StreamDelta) -> Void)?
    ) throws -> [RequestOutput] {
        // Every sequence of one call shares the seed (given or drawn), as before the engine.
        let seed = params.seed ?? UInt64.random(in: 0...UInt64.max)
        for (index, (text, ids)) in prompts.enumerated() {
            try engine.add(id: "\(index)", prompt: text, promptTokenIDs: ids, params: params, seed: seed, arrival: nil)
        }
        var outputs = [RequestOutput?](repeating: nil, count: prompts.count)
        var logprobs = [[TokenLogprobs]](repeating: [], count: prompts.count)
        var timings = GenerationTimings()
        timings.promptTokens = prompts.reduce(0) { $0 + $1.ids.count }
        var started = Set<Int>()
        let clock = DispatchTime.now().uptimeNanoseconds
        var prefillEnd: UInt64?
        var failure: EngineError?
        lastSteps = []
        var (lastLog, lastStats) = (clock, engine.stats)
        while engine.unfinishedCount > 0 {
            if let interval = statsInterval, Double(DispatchTime.now().uptimeNanoseconds - lastLog) / 1e9 >= interval {
                let (now, stats) = (DispatchTime.now().uptimeNanoseconds, engine.stats)
                var lines = stats.line(since: lastStats, seconds: Double(now - lastLog) / 1e9) + "\n"
                let replicas = engine.replicaStats
                if replicas.count > 1 {
                    for (index, replica) in replicas.enumerated() {
                        lines += "  replica \(index): running \(replica.running), waiting \(replica.waiting), KV cache \(replica.usedBlocks)/\(replica.totalBlocks) blocks, generated \(replica.generatedTokens) tokens\n"
                    }
                }
                FileHandle.standardError.write(Data(lines.utf8))
                (lastLog, lastStats) = (now, stats)
            }
            let updates = try engine.step()
            // A front end's step that ran nothing here (it took other replicas' outputs) has no shape.
            if engine.lastStep.scheduledRequests > 0 { lastSteps.append(engine.lastStep) }
            for update in updates {
                let index = Int(update.requestID)!
                if let requestFailure = update.failure {
                    failure = failure ?? requestFailure
                    started.insert(index)
                    continue
                }
                if started.contains(index) { timings.decodeTokens += update.newTokenIDs.count } else { started.insert(index) }
                if let onDelta, let token = update.newTokenIDs.last {
                    onDelta(StreamDelta(index: index, text: update.textDelta, tokenID: token, finishReason: update.finishReason))
                }
                logprobs[index] += update.logprobs
                if let final = update.final {
                    outputs[index] = final.output
                    if params.logprobs != nil { outputs[index]!.logprobs = logprobs[index] }
                }
            }
            if prefillEnd == nil, started.count == prompts.count {
                prefillEnd = DispatchTime.now().uptimeNanoseconds
                model.group.communication.reset()  // from here on, decode's share
            } else if prefillEnd != nil {
                timings.decodeSteps += 1
            }
        }
        // A request that failed on its own (non-finite logits: broken weights, most likely) fails the call once
        // the others are done; like any error of a call, it stops this LLM's engine.
        if let failure { throw failure }
        let end = DispatchTime.now().uptimeNanoseconds
        timings.prefillSeconds = Double((prefillEnd ?? end) - clock) / 1e9
        if timings.decodeSteps > 0 {
            timings.decodeSeconds = Double(end - (prefillEnd ?? end)) / 1e9
            timings.decodeCommunicationSeconds = model.group.communication.seconds
            timings.decodeAllReduceBytes = model.group.communication.allReduceBytes
        }
        lastTimings = timings
        return outputs.map { $0! }
    }

    /// A collective's failure because a spawned worker vanished, as that worker's exit status (`rankFailed`:
    /// "it was killed by signal 9"); other errors, and every error without spawned workers, as they are.
    func explained(_ error: any Error) -> any Error {
        spawnedRanks.map { Self.explained(error, $0) } ?? error
    }

    private static func explained(_ error: any Error, _ ranks: SpawnedRanks) -> any Error {
        var lost = error is CommError || error is QueueError
        if case .replicaFailed = error as? EngineError { lost = true }
        guard lost, let ended = ranks.firstEnded(within: 0.5) else { return error }
        return EngineError.rankFailed(rank: ended.rank, "it \(ended.ending) (\(error))")
    }

    /// What each rank reports once it has tried to load: its error, or the bytes of weights it holds.
    private struct RankReady: Codable {
        var failure: String?
        var weightBytes: Int
    }

    /// Rank 0's outputs on every rank of the launched world.
    private func shareOutputs(_ outputs: [RequestOutput]?) throws -> [RequestOutput] {
        guard let world = groups.all else { return outputs! }
        return try world.broadcastObject(outputs, source: 0)
    }

    /// Ranks given different prompts or parameters would run collectives of different sizes; compare a digest
    /// first so the error says what is wrong.
    private func checkSameRequestsOnEveryRank(_ prompts: [[Int]], _ params: SamplingParams) throws {
        guard let world = groups.all else { return }
        let digests = try world.allGatherObject(stableHash("\(prompts)|\(params)"))
        if let rank = digests.firstIndex(where: { $0 != digests[0] }) {
            throw GenerationError.invalidRequest(
                "rank \(rank) called generate with other prompts or sampling parameters than rank 0; every rank of the "
                    + "engine must make the same requests")
        }
    }
}
