import Dispatch
import Foundation
import TandemComm
import TandemParallel
import TandemTensor

/// Offline generation, as vLLM's `LLM`: load a checkpoint directory, then `generate` completions for a batch of
/// prompts — one prefill pass over every prompt, then decode steps over the active sequences with their KV
/// caches.
///
/// With tensor parallelism every rank of the group constructs an `LLM` and calls `generate` with the same
/// prompts (SPMD, as torch.distributed programs run): each holds its slices, the layers communicate, logits
/// are gathered on every rank and every rank samples the same tokens with the same seed, so each returns the
/// same outputs. `tandem generate --tp N` starts the ranks for you.
public final class LLM {
    /// This rank's part of the model.
    public let model: LlamaModel
    /// The checkpoint's tokenizer.
    public let tokenizer: any Tokenizer
    /// Seconds spent loading the tokenizer and this rank's weights.
    public let loadSeconds: Double
    /// Where the time of the last `generate` went.
    public private(set) var lastTimings = GenerationTimings()
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

    /// Loads `model` as this rank of `group`.
    public init(model directory: String, group: TensorParallelGroup, threads: Int? = nil, progress: ((Int, Int) -> Void)? = nil) throws {
        let start = DispatchTime.now().uptimeNanoseconds
        if let threads { Matmul.setThreads(threads) }
        tokenizer = try BytePairTokenizer(directory: directory)
        model = try LlamaModel(directory: directory, group: group, progress: progress)
        eosTokenIDs = Set(model.config.eosTokenIDs).union(try Self.generationEOS(directory))
        loadSeconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    }

    /// Completions of `prompts`, in order.
    ///
    /// - Throws: `GenerationError` for invalid parameters or prompts, `TokenizerError` for text that cannot be
    ///   encoded, `CommError` when a collective fails.
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
        let config = model.config
        var sequences: [GeneratingSequence] = []
        for (index, (prompt, ids)) in prompts.enumerated() {
            guard !ids.isEmpty else { throw GenerationError.invalidRequest("prompt \(index) encodes to no tokens") }
            guard ids.count < config.maxPositions else {
                throw GenerationError.invalidRequest(
                    "prompt \(index) has \(ids.count) tokens; the model's context is \(config.maxPositions) (max_position_embeddings)")
            }
            let capacity = min(ids.count + params.maxTokens, config.maxPositions)
            sequences.append(GeneratingSequence(prompt: prompt, promptIDs: ids, cache: model.makeCache(capacity: capacity), tokenizer: tokenizer, params: params))
        }
        let seed = try agreedSeed(params.seed)
        var generators = sequences.map { _ in SeededGenerator(seed: seed) }
        var stopIDs = Set(params.stopTokenIDs)
        if !params.ignoreEOS { stopIDs.formUnion(eosTokenIDs) }

        var timings = GenerationTimings()
        var clock = DispatchTime.now().uptimeNanoseconds
        func lap() -> Double {
            let now = DispatchTime.now().uptimeNanoseconds
            defer { clock = now }
            return Double(now - clock) / 1e9
        }
        // Prefill every prompt in one pass; its logits give each sequence's first token.
        var active = Array(sequences.indices)
        var logits = try model.forward(sequences.map { ($0.promptIDs, $0.cache) })
        timings.promptTokens = sequences.reduce(0) { $0 + $1.promptIDs.count }
        var first = true
        while !active.isEmpty {
            let row = logits.baseAddress.assumingMemoryBound(to: Float.self)
            let width = logits.shape[1]
            for (slot, index) in active.enumerated() {
                let token = Sampler.sample(
                    row + slot * width, count: width, temperature: params.temperature, topK: params.topK, topP: params.topP,
                    using: &generators[index])
                sequences[index].accept(token, stopIDs: stopIDs)
                if let onDelta {
                    onDelta(StreamDelta(index: index, text: sequences[index].takeReadyText(), tokenID: token, finishReason: sequences[index].finishReason))
                }
            }
            if first {
                timings.prefillSeconds = lap()
                model.group.communication.reset()  // from here on, decode's share
                first = false
            } else {
                timings.decodeTokens += active.count
                timings.decodeSteps += 1
            }
            active = active.filter { sequences[$0].finishReason == nil }
            guard !active.isEmpty else { break }
            logits = try model.forward(active.map { ([sequences[$0].tokenIDs.last!], sequences[$0].cache) })
        }
        if timings.decodeSteps > 0 {
            timings.decodeSeconds = lap()
            timings.decodeCommunicationSeconds = model.group.communication.seconds
        }
        lastTimings = timings
        return sequences.map(\.output)
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

    /// The request's seed, or one drawn by rank 0 and shared, so every rank samples alike.
    private func agreedSeed(_ seed: UInt64?) throws -> UInt64 {
        if let seed { return seed }
        let drawn = UInt64.random(in: 0...UInt64.max)
        guard let group = model.group.group else { return drawn }
        return try group.broadcastObject(group.rank == 0 ? drawn : nil, source: 0)
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

/// One prompt while it generates: its cache, tokens and text, and when it stops.
private struct GeneratingSequence {
    let prompt: String
    let promptIDs: [Int]
    let cache: SequenceCache
    let params: SamplingParams
    /// Scalars in the longest stop string (0 without stop strings).
    private let longestStop: Int
    var tokenIDs: [Int] = []
    var text = ""
    var finishReason: FinishReason?
    private var detokenizer: IncrementalDetokenizer
    /// Unicode scalars of `text` already handed to a stream (scalars, not characters: a combining mark
    /// arriving later joins the previous character without changing the count of what was sent).
    private var streamed = 0

    init(prompt: String, promptIDs: [Int], cache: SequenceCache, tokenizer: any Tokenizer, params: SamplingParams) {
        self.prompt = prompt
        self.promptIDs = promptIDs
        self.cache = cache
        self.params = params
        longestStop = params.stop.map(\.unicodeScalars.count).max() ?? 0
        detokenizer = IncrementalDetokenizer(tokenizer: tokenizer, skipSpecialTokens: params.skipSpecialTokens)
    }

    /// Takes a sampled token and decides whether the sequence ends.
    mutating func accept(_ token: Int, stopIDs: Set<Int>) {
        tokenIDs.append(token)
        if stopIDs.contains(token) {
            text += detokenizer.finish()
            finishReason = .stop
            return
        }
        // A stop string may begin in earlier text and end in this token's.
        let searchFrom = max(0, text.unicodeScalars.count - longestStop)
        text += detokenizer.append(token)
        if let cut = earliestStop(from: searchFrom) {
            text = String(text.unicodeScalars[..<cut])
            finishReason = .stop
        } else if tokenIDs.count >= params.maxTokens || promptIDs.count + tokenIDs.count >= cache.capacity {
            text += detokenizer.finish()
            finishReason = .length
        }
    }

    /// Where the first stop string in `text` begins, searching from scalar `offset`.
    private func earliestStop(from offset: Int) -> String.Index? {
        guard !params.stop.isEmpty else { return nil }
        let start = text.unicodeScalars.index(text.startIndex, offsetBy: offset)
        // Literal: code point for code point, as Python's str.find in vLLM (not canonical equivalence).
        return params.stop.compactMap { text.range(of: $0, options: .literal, range: start..<text.endIndex)?.lowerBound }.min()
    }

    /// The text not yet streamed that no stop string can still cut: all of it once finished, else all but the
    /// last (longest stop string − 1) scalars.
    mutating func takeReadyText() -> String {
        let holdBack = finishReason == nil ? max(longestStop - 1, 0) : 0
        let ready = max(text.unicodeScalars.count - holdBack, streamed)
        defer { streamed = ready }
        var piece = String.UnicodeScalarView()
        piece.append(contentsOf: text.unicodeScalars.dropFirst(streamed).prefix(ready - streamed))
        return String(piece)
    }

    var output: RequestOutput {
        RequestOutput(prompt: prompt, promptTokenIDs: promptIDs, tokenIDs: tokenIDs, text: text, finishReason: finishReason ?? .length)
    }
}
