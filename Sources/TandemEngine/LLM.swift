import Dispatch
import Foundation
import TandemComm
import TandemModel
import TandemParallel
import TandemTensor

/// Offline generation, as vLLM's `LLM`: load a checkpoint directory, then `generate` completions for a batch of
/// prompts. A client of the engine: `generate` submits every prompt to an `EngineCore` and steps it until all
/// are done (continuous batching over a paged KV cache with prefix caching).
///
/// With tensor parallelism every rank of the group constructs an `LLM` and calls `generate` with the same
/// prompts (SPMD, as torch.distributed programs run): rank 0 drives the engine and the other ranks run the
/// worker loop for the call — each step's plan reaches them through a broadcast queue — and every rank returns
/// rank 0's outputs. `tandem generate --tp N` starts the ranks for you.
public final class LLM {
    /// This rank's part of the model and its KV cache.
    public let runner: ModelRunner
    /// This rank's part of the model.
    public var model: any CausalLanguageModel { runner.model }
    /// The checkpoint's tokenizer.
    public let tokenizer: any Tokenizer
    /// Seconds spent loading the tokenizer and this rank's weights.
    public let loadSeconds: Double
    /// Where the time of the last `generate` went.
    public private(set) var lastTimings = GenerationTimings()
    /// Seconds between statistics lines on standard error while `generate` runs (vLLM's `--log-stats`); nil: none.
    public var statsInterval: Double?

    /// Prompt tokens found in the prefix cache since loading (rank 0; 0 on the other ranks).
    public var prefixCacheHitTokens: Int { engine?.prefixCacheTokens.hits ?? 0 }
    /// Each step of the last `generate` (rank 0; empty on the other ranks).
    public private(set) var lastSteps: [StepStats] = []
    /// End-of-sequence ids from config.json and generation_config.json.
    public let eosTokenIDs: Set<Int>

    /// Loads `model` (a checkpoint directory) split `tensorParallelSize` ways.
    ///
    /// - Parameters:
    ///   - tensorParallelSize: 1 runs in this process alone; larger needs `ParallelState.current` with a tensor
    ///     group of that size (ranks started by `tandem launch` or `tandem generate --tp`).
    ///   - threads: BLAS threads for this rank (nil: leave BLAS's own choice).
    ///   - progress: called after each decoder layer is loaded with (loaded, total).
    /// - Throws: `GenerationError.invalidRequest` when the parallel state does not match, `ModelLoadError` for
    ///   the checkpoint.
    public convenience init(
        model: String, tensorParallelSize: Int = 1, threads: Int? = nil, progress: ((Int, Int) -> Void)? = nil
    ) throws {
        let group: TensorParallelGroup
        if tensorParallelSize == 1 && ParallelState.current == nil {
            group = .single
        } else if let state = ParallelState.current, state.tensor.worldSize == tensorParallelSize {
            group = TensorParallelGroup(state.tensor)
        } else {
            let found = ParallelState.current.map { "the parallel state has a tensor group of \($0.tensor.worldSize)" } ?? "no parallel state is initialized"
            throw GenerationError.invalidRequest(
                "tensorParallelSize \(tensorParallelSize) needs a tensor-parallel group of that size, but \(found): run `tandem generate --tp "
                    + "\(tensorParallelSize)`, or start the ranks with `tandem launch` and call ParallelState.initialize first")
        }
        try self.init(model: model, group: group, threads: threads, progress: progress)
    }

    /// The driver's engine (rank 0 of the group); nil on the other ranks.
    private let engine: EngineCore?
    /// Each step's plan from rank 0 to the others (nil for one rank).
    private let plans: BroadcastQueue?

    /// Loads `model` as this rank of `group`; every rank of the group calls this together (the KV cache size and
    /// the plan queue are agreed over the group).
    ///
    /// - Parameters:
    ///   - cache: the KV cache's size, dtype and prefix caching (defaults: see `CacheConfig`).
    ///   - scheduler: the step's token budget and the running-request cap.
    ///   - localRanks: ranks sharing this host's memory (for the default cache size).
    ///   - precision: what the linear layers multiply in (`.bfloat16` needs AVX-512 BF16).
    public init(
        model directory: String, group: TensorParallelGroup, threads: Int? = nil, cache: CacheConfig = CacheConfig(),
        scheduler: SchedulerConfig = SchedulerConfig(), localRanks: Int? = nil, precision: ComputePrecision = .float32,
        progress: ((Int, Int) -> Void)? = nil
    ) throws {
        let start = DispatchTime.now().uptimeNanoseconds
        if let threads { Matmul.setThreads(threads) }
        tokenizer = try BytePairTokenizer(directory: directory)
        let model = try ModelRegistry.load(directory: directory, group: group, precision: precision, progress: progress)
        eosTokenIDs = Set(model.config.eosTokenIDs).union(try Self.generationEOS(directory))
        runner = try ModelRunner(model: model, cacheConfig: cache, maxNumSeqs: scheduler.maxNumSeqs, localRanks: localRanks ?? group.size)
        plans = try group.group.map { try BroadcastQueue(world: $0, writer: 0, name: "plans") }
        engine = group.rank == 0
            ? EngineCore(runner: runner, tokenizer: tokenizer, eosTokenIDs: eosTokenIDs, scheduler: scheduler, prefixCaching: cache.prefixCaching, plans: plans)
            : nil
        loadSeconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    }

    deinit { plans?.shutdown() }

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
        try checkSameRequestsOnEveryRank(prompts.map(\.ids), params)
        guard !prompts.isEmpty else { return [] }
        // Every rank refuses the same requests before any step, so no rank is left waiting.
        for (index, prompt) in prompts.enumerated() { try runner.check(id: "\(index)", promptTokenIDs: prompt.ids, params: params) }
        guard let engine else {
            // A worker for this call: run the driver's plans, then take its outputs.
            try WorkerLoop.run(runner, plans: plans!)
            return try shareOutputs(nil)
        }
        do {
            let outputs = try drive(engine, prompts, params, onDelta: onDelta)
            try engine.releaseWorkers()
            return try shareOutputs(outputs)
        } catch {
            // Release the workers if the group still works, so they fail or return rather than wait.
            engine.shutdown()
            throw error
        }
    }

    /// Submits every prompt and steps the engine until all are done.
    private func drive(
        _ engine: EngineCore, _ prompts: [(text: String, ids: [Int])], _ params: SamplingParams, onDelta: ((StreamDelta) -> Void)?
    ) throws -> [RequestOutput] {
        // Every sequence of one call shares the seed (given or drawn), as before the engine.
        let seed = params.seed ?? UInt64.random(in: 0...UInt64.max)
        for (index, (text, ids)) in prompts.enumerated() {
            try engine.add(id: "\(index)", prompt: text, promptTokenIDs: ids, params: params, seed: seed)
        }
        var outputs = [RequestOutput?](repeating: nil, count: prompts.count)
        var timings = GenerationTimings()
        timings.promptTokens = prompts.reduce(0) { $0 + $1.ids.count }
        var started = Set<Int>()
        let clock = DispatchTime.now().uptimeNanoseconds
        var prefillEnd: UInt64?
        lastSteps = []
        var (lastLog, lastStats) = (clock, engine.stats)
        while engine.unfinishedCount > 0 {
            if let interval = statsInterval, Double(DispatchTime.now().uptimeNanoseconds - lastLog) / 1e9 >= interval {
                let (now, stats) = (DispatchTime.now().uptimeNanoseconds, engine.stats)
                FileHandle.standardError.write(Data((stats.line(since: lastStats, seconds: Double(now - lastLog) / 1e9) + "\n").utf8))
                (lastLog, lastStats) = (now, stats)
            }
            let updates = try engine.step()
            lastSteps.append(engine.lastStep)
            for update in updates {
                let index = Int(update.requestID)!
                if started.contains(index) { timings.decodeTokens += update.newTokenIDs.count } else { started.insert(index) }
                if let onDelta, let token = update.newTokenIDs.last {
                    onDelta(StreamDelta(index: index, text: update.textDelta, tokenID: token, finishReason: update.finishReason))
                }
                if let final = update.final { outputs[index] = final.output }
            }
            if prefillEnd == nil, started.count == prompts.count {
                prefillEnd = DispatchTime.now().uptimeNanoseconds
                model.group.communication.reset()  // from here on, decode's share
            } else if prefillEnd != nil {
                timings.decodeSteps += 1
            }
        }
        let end = DispatchTime.now().uptimeNanoseconds
        timings.prefillSeconds = Double((prefillEnd ?? end) - clock) / 1e9
        if timings.decodeSteps > 0 {
            timings.decodeSeconds = Double(end - (prefillEnd ?? end)) / 1e9
            timings.decodeCommunicationSeconds = model.group.communication.seconds
        }
        lastTimings = timings
        return outputs.map { $0! }
    }

    /// Rank 0's outputs on every rank of the group.
    private func shareOutputs(_ outputs: [RequestOutput]?) throws -> [RequestOutput] {
        guard let group = model.group.group else { return outputs! }
        return try group.broadcastObject(outputs, source: 0)
    }

    /// Ranks given different prompts or parameters would run collectives of different sizes; compare a digest
    /// first so the error says what is wrong.
    private func checkSameRequestsOnEveryRank(_ prompts: [[Int]], _ params: SamplingParams) throws {
        guard let group = model.group.group else { return }
        let digests = try group.allGatherObject(stableHash("\(prompts)|\(params)"))
        if let rank = digests.firstIndex(where: { $0 != digests[0] }) {
            throw GenerationError.invalidRequest(
                "rank \(rank) called generate with other prompts or sampling parameters than rank 0; every rank of the "
                    + "tensor-parallel group must make the same requests")
        }
    }

    /// `eos_token_id` of generation_config.json (an id or a list), if the file is there.
    private static func generationEOS(_ directory: String) throws(ModelLoadError) -> [Int] {
        let path = (directory as NSString).appendingPathComponent("generation_config.json")
        guard let data = FileManager.default.contents(atPath: path) else { return [] }
        guard let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw .malformed(path: path, detail: "not a JSON object")
        }
        let value = json["eos_token_id"]
        if value == nil || value is NSNull { return [] }
        if let id = value as? Int { return [id] }
        if let ids = value as? [Int] { return ids }
        throw .malformed(path: path, detail: "eos_token_id must be a token id or a list of them")
    }
}
