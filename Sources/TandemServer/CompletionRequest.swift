import TandemEngine
import TandemTemplate

/// A `POST /v1/completions` body, checked field by field (OpenAI's names and defaults; vLLM's extensions
/// `top_k`, `stop_token_ids`, `ignore_eos`, `skip_special_tokens`).
public struct CompletionRequest: Equatable, Sendable {
    /// One prompt: text to tokenize, or token ids as given.
    public enum Prompt: Equatable, Sendable {
        case text(String)
        case tokens([Int])
    }

    public var model: String
    /// One choice set per prompt (`prompt` may be a string, a list of strings, token ids or lists of them).
    public var prompts: [Prompt]
    /// `max_tokens` 16 by default, as OpenAI's.
    public var sampling: SamplingParams
    /// Choices per prompt.
    public var n: Int
    /// Put the prompt in front of each choice's text.
    public var echo: Bool
    public var stream: Bool
    /// Stream a last chunk with the usage (`stream_options.include_usage`).
    public var includeUsage: Bool

    /// Choices per request at most (`n` × prompts).
    public static let maximumChoices = 128

    /// - Throws: `APIError` (400) naming the first field that is missing, of the wrong type, out of range,
    ///   unsupported or unknown.
    public init(body: TemplateValue) throws(APIError) {
        var fields = try RequestFields(body)
        guard let model = try fields.string("model") else { throw .invalid("model", "model is required") }
        self.model = model
        guard let prompt = fields.value("prompt") else { throw .invalid("prompt", "prompt is required") }
        prompts = try Self.prompts(prompt)
        let maxTokens = try fields.integer("max_tokens", in: 1...Int(Int32.max)) ?? 16
        var sampling = try SamplingFields.read(&fields, maxTokens: maxTokens)
        n = try fields.integer("n", in: 1...Self.maximumChoices) ?? 1
        guard n * prompts.count <= Self.maximumChoices else {
            throw .invalid("n", "n × prompts is \(n * prompts.count) choices; at most \(Self.maximumChoices) per request")
        }
        echo = try fields.bool("echo") ?? false
        (stream, includeUsage) = try SamplingFields.streaming(&fields)
        try fields.unsupported("best_of") { $0.number == Double(1) }
        // The prompt's own log-probabilities (what echo with logprobs returns) are not computed.
        sampling.logprobs = try fields.integer("logprobs", in: 0...TokenLogprobs.maximumCount)
        if sampling.logprobs != nil, echo { throw .invalid("echo", "echo together with logprobs (the prompt's log-probabilities) is not supported by Tandem") }
        self.sampling = sampling
        try fields.unsupported("suffix") { _ in false }
        try fields.finish()
    }

    private static func prompts(_ value: TemplateValue) throws(APIError) -> [Prompt] {
        func ids(_ items: [TemplateValue]) throws(APIError) -> [Int] {
            var result: [Int] = []
            for item in items {
                guard case let .int(id) = item, id >= 0 else { throw .invalid("prompt", "token ids in prompt must be integers ≥ 0") }
                result.append(id)
            }
            guard !result.isEmpty else { throw .invalid("prompt", "a prompt of token ids must not be empty") }
            return result
        }
        switch value {
        case let .string(text):
            return [.text(text)]
        case let .list(items) where items.isEmpty:
            throw .invalid("prompt", "prompt must not be an empty list")
        case let .list(items):
            switch items[0] {
            case .int: return [.tokens(try ids(items))]
            case .string:
                var prompts: [Prompt] = []
                for item in items {
                    guard case let .string(text) = item else { throw .invalid("prompt", "a list of prompts must all be strings") }
                    prompts.append(.text(text))
                }
                return prompts
            case .list:
                var prompts: [Prompt] = []
                for item in items {
                    guard case let .list(inner) = item else { throw .invalid("prompt", "a list of token-id prompts must all be lists") }
                    prompts.append(.tokens(try ids(inner)))
                }
                return prompts
            default:
                throw .invalid("prompt", "prompt must be a string, a list of strings, token ids or lists of token ids")
            }
        default:
            throw .invalid("prompt", "prompt must be a string, a list of strings, token ids or lists of token ids, got \(value.typeName)")
        }
    }
}
