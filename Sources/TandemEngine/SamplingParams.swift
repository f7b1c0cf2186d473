import TandemModel

/// How tokens are chosen and when a sequence ends — vLLM's `SamplingParams`.
public struct SamplingParams: Sendable, Equatable, Codable {
    /// 0 is greedy; higher flattens the distribution.
    public var temperature: Float
    /// Keep the smallest set of tokens whose probability reaches this (1: all).
    public var topP: Float
    /// Keep this many most likely tokens (0 or -1: all).
    public var topK: Int
    /// Seeds the request's generator so its tokens repeat; nil draws one (the same on every rank).
    public var seed: UInt64?
    /// The most tokens to generate.
    public var maxTokens: Int
    /// Text that ends the sequence when generated; the output stops before it.
    public var stop: [String]
    /// Token ids that end the sequence (kept in `tokenIDs`), besides the model's end-of-sequence ids.
    public var stopTokenIDs: [Int]
    /// Keep generating past end-of-sequence tokens.
    public var ignoreEOS: Bool
    /// Leave special tokens out of the text.
    public var skipSpecialTokens: Bool
    /// Report each sampled token's log-probability and those of this many most likely tokens (nil: none).
    public var logprobs: Int?

    /// vLLM's defaults: temperature 1, no top-p/top-k cut, a random seed, 16 tokens, no stops.
    public init(
        temperature: Float = 1, topP: Float = 1, topK: Int = 0, seed: UInt64? = nil, maxTokens: Int = 16, stop: [String] = [],
        stopTokenIDs: [Int] = [], ignoreEOS: Bool = false, skipSpecialTokens: Bool = true, logprobs: Int? = nil
    ) {
        self.temperature = temperature
        self.topP = topP
        self.topK = topK
        self.seed = seed
        self.maxTokens = maxTokens
        self.stop = stop
        self.stopTokenIDs = stopTokenIDs
        self.ignoreEOS = ignoreEOS
        self.skipSpecialTokens = skipSpecialTokens
        self.logprobs = logprobs
    }

    /// Checks every field.
    ///
    /// - Throws: `GenerationError.invalidRequest` naming the field and its valid range.
    public func validate() throws(GenerationError) {
        guard temperature >= 0, temperature.isFinite else { throw .invalidRequest("temperature must be ≥ 0, got \(temperature)") }
        guard topP > 0, topP <= 1 else { throw .invalidRequest("top_p must be in (0, 1], got \(topP)") }
        guard topK >= -1 else { throw .invalidRequest("top_k must be -1, 0 (all tokens) or positive, got \(topK)") }
        guard maxTokens >= 1 else { throw .invalidRequest("max_tokens must be at least 1, got \(maxTokens)") }
        guard !stop.contains("") else { throw .invalidRequest("stop strings must not be empty") }
        guard stopTokenIDs.allSatisfy({ $0 >= 0 }) else { throw .invalidRequest("stop_token_ids must be ≥ 0, got \(stopTokenIDs)") }
        if let logprobs, !(0...TokenLogprobs.maximumCount).contains(logprobs) {
            throw .invalidRequest("logprobs must be in 0...\(TokenLogprobs.maximumCount), got \(logprobs)")
        }
    }
}

/// Why a sequence ended.
public enum FinishReason: String, Sendable, Codable {
    /// An end-of-sequence token, a stop token id or a stop string.
    case stop
    /// `maxTokens` were generated, or the model's context is full.
    case length
    /// The request was aborted before it finished.
    case abort
}

/// One prompt's result — vLLM's `RequestOutput` with its single completion folded in.
public struct RequestOutput: Sendable, Equatable, Codable {
    /// The prompt as given (or its ids decoded).
    public let prompt: String
    /// The prompt's ids, special tokens included.
    public let promptTokenIDs: [Int]
    /// Generated ids, including a final end-of-sequence or stop token id.
    public let tokenIDs: [Int]
    /// The generated text, cut before a stop string.
    public let text: String
    /// Why the sequence ended.
    public let finishReason: FinishReason
    /// Each generated token's log-probabilities, when `SamplingParams.logprobs` asked for them.
    public var logprobs: [TokenLogprobs]?

    enum CodingKeys: String, CodingKey {
        case prompt, promptTokenIDs = "prompt_token_ids", tokenIDs = "token_ids", text, finishReason = "finish_reason", logprobs
    }
}

/// New text of one sequence while `generate` runs (for streaming).
public struct StreamDelta: Sendable, Equatable {
    /// The prompt's index in the request.
    public let index: Int
    /// Text completed by this step (possibly empty: a character still incomplete, or text held back for a stop
    /// string).
    public let text: String
    /// The token this step generated.
    public let tokenID: Int
    /// Set on the sequence's last delta.
    public let finishReason: FinishReason?
}

/// Where the time of the last `generate` went.
public struct GenerationTimings: Sendable, Equatable, Codable {
    /// Prompt tokens processed, and the seconds of the prefill pass.
    public var promptTokens = 0
    public var prefillSeconds = 0.0
    /// Tokens generated after the first of each sequence, and the seconds of the decode steps.
    public var decodeTokens = 0
    public var decodeSeconds = 0.0
    /// Decode steps run (a step produces one token for every active sequence).
    public var decodeSteps = 0
    /// Seconds of the decode steps spent in tensor-parallel collectives (this rank).
    public var decodeCommunicationSeconds = 0.0
    /// Bytes this rank sent in the decode steps' tensor-parallel all-reduces (`CommunicationTime.allReduceBytes`).
    public var decodeAllReduceBytes = 0

    /// Prompt tokens per second of the prefill pass.
    public var prefillTokensPerSecond: Double { prefillSeconds > 0 ? Double(promptTokens) / prefillSeconds : 0 }
    /// Generated tokens per second of the decode steps (all sequences together).
    public var decodeTokensPerSecond: Double { decodeSeconds > 0 ? Double(decodeTokens) / decodeSeconds : 0 }
}
