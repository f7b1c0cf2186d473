import TandemEngine
import TandemTemplate

/// OpenAI's response bodies and Server-Sent-Event chunks, field for field (`id`, `object`, `created`,
/// `model`, `choices`, `usage`, `logprobs`), so the `openai` client and others read them unchanged.
public enum OpenAIResponse {
    /// Tokens a request used.
    public struct Usage: Equatable, Sendable {
        public var promptTokens: Int
        public var completionTokens: Int
        public init(promptTokens: Int, completionTokens: Int) {
            (self.promptTokens, self.completionTokens) = (promptTokens, completionTokens)
        }

        var value: TemplateValue {
            .dictionary([
                ("prompt_tokens", .int(promptTokens)), ("total_tokens", .int(promptTokens + completionTokens)),
                ("completion_tokens", .int(completionTokens)),
            ])
        }
    }

    /// A token as the response shows it: its text, its bytes (a byte-level token may be part of a character)
    /// and its log-probability.
    public struct TokenLogprob: Equatable, Sendable {
        public var token: String
        public var bytes: [UInt8]
        public var logprob: Float
        public init(token: String, bytes: [UInt8], logprob: Float) { (self.token, self.bytes, self.logprob) = (token, bytes, logprob) }
    }

    /// One generated token's log-probabilities: the sampled token, and the most likely ones, most likely first.
    public struct LogprobStep: Equatable, Sendable {
        public var sampled: TokenLogprob
        public var top: [TokenLogprob]
        public init(sampled: TokenLogprob, top: [TokenLogprob]) { (self.sampled, self.top) = (sampled, top) }
    }

    /// One choice of a finished request.
    public struct Choice: Equatable, Sendable {
        public var index: Int
        public var text: String
        public var finishReason: FinishReason?
        /// Its tokens' log-probabilities, when the request asked for them.
        public var logprobs: [LogprobStep]?
        public init(index: Int, text: String, finishReason: FinishReason?, logprobs: [LogprobStep]? = nil) {
            (self.index, self.text, self.finishReason, self.logprobs) = (index, text, finishReason, logprobs)
        }
    }

    /// Where a response goes: the two endpoints name their objects differently.
    public enum Endpoint: Sendable {
        case completions, chatCompletions
    }

    /// The body of a finished (not streamed) request.
    public static func body(_ endpoint: Endpoint, id: String, created: Int, model: String, choices: [Choice], usage: Usage) -> String {
        let encoded: [TemplateValue] = choices.map { choice in
            switch endpoint {
            case .completions:
                .dictionary([
                    ("index", .int(choice.index)), ("text", .string(choice.text)), ("logprobs", logprobs(endpoint, choice.logprobs, textOffset: 0)),
                    ("finish_reason", reason(choice.finishReason)),
                ])
            case .chatCompletions:
                .dictionary([
                    ("index", .int(choice.index)), ("message", .dictionary([("role", .string("assistant")), ("content", .string(choice.text))])),
                    ("logprobs", logprobs(endpoint, choice.logprobs, textOffset: 0)), ("finish_reason", reason(choice.finishReason)),
                ])
            }
        }
        return json(.dictionary([
            ("id", .string(id)), ("object", .string(endpoint == .completions ? "text_completion" : "chat.completion")),
            ("created", .int(created)), ("model", .string(model)), ("choices", .list(encoded)), ("usage", usage.value),
        ]))
    }

    /// One streamed chunk: a choice's new text (and, for chat, the role on its first chunk), the log-probabilities
    /// of its new tokens when asked (`textOffset`: where the chunk's text starts in the choice's), and its finish
    /// reason on its last. `usage` is null in every chunk when the client asked for a usage chunk, absent otherwise.
    public static func chunk(
        _ endpoint: Endpoint, id: String, created: Int, model: String, index: Int, text: String, firstOfChoice: Bool = false,
        logprobs steps: [LogprobStep]? = nil, textOffset: Int = 0, finishReason: FinishReason?, usageRequested: Bool
    ) -> String {
        let choice: TemplateValue
        let logprobs = logprobs(endpoint, steps, textOffset: textOffset)
        switch endpoint {
        case .completions:
            choice = .dictionary([("index", .int(index)), ("text", .string(text)), ("logprobs", logprobs), ("finish_reason", reason(finishReason))])
        case .chatCompletions:
            var delta: [(String, TemplateValue)] = []
            if firstOfChoice { delta.append(("role", .string("assistant"))) }
            if !text.isEmpty || (firstOfChoice && finishReason == nil) { delta.append(("content", .string(text))) }
            choice = .dictionary([("index", .int(index)), ("delta", .dictionary(delta)), ("logprobs", logprobs), ("finish_reason", reason(finishReason))])
        }
        var fields: [(String, TemplateValue)] = [
            ("id", .string(id)), ("object", .string(chunkObject(endpoint))), ("created", .int(created)), ("model", .string(model)),
            ("choices", .list([choice])),
        ]
        if usageRequested { fields.append(("usage", .none)) }
        return json(.dictionary(fields))
    }

    /// The last chunk when the client asked for usage: no choices, the request's usage.
    public static func usageChunk(_ endpoint: Endpoint, id: String, created: Int, model: String, usage: Usage) -> String {
        json(.dictionary([
            ("id", .string(id)), ("object", .string(chunkObject(endpoint))), ("created", .int(created)), ("model", .string(model)),
            ("choices", .list([])), ("usage", usage.value),
        ]))
    }

    /// A choice's `logprobs` object, null when not asked for. Completions: OpenAI's legacy form (`tokens`,
    /// `token_logprobs`, `top_logprobs` — the top tokens and the sampled one, keyed by text —, `text_offset` in
    /// characters from `textOffset`). Chat: `{"content": [{token, logprob, bytes, top_logprobs}]}`.
    static func logprobs(_ endpoint: Endpoint, _ steps: [LogprobStep]?, textOffset: Int) -> TemplateValue {
        guard let steps else { return .none }
        // JSON has no -Infinity; vLLM reports a token the model rules out as -9999.
        func number(_ logprob: Float) -> TemplateValue { .double(Double(max(logprob, -9999))) }
        switch endpoint {
        case .completions:
            var offsets: [TemplateValue] = []
            var offset = textOffset
            for step in steps {
                offsets.append(.int(offset))
                offset += step.sampled.token.unicodeScalars.count
            }
            let tops: [TemplateValue] = steps.map { step in
                var pairs: [(String, TemplateValue)] = []
                for entry in step.top + [step.sampled] where !pairs.contains(where: { $0.0 == entry.token }) {
                    pairs.append((entry.token, number(entry.logprob)))
                }
                return .dictionary(pairs)
            }
            return .dictionary([
                ("tokens", .list(steps.map { .string($0.sampled.token) })), ("token_logprobs", .list(steps.map { number($0.sampled.logprob) })),
                ("top_logprobs", .list(tops)), ("text_offset", .list(offsets)),
            ])
        case .chatCompletions:
            func entry(_ token: TokenLogprob) -> [(String, TemplateValue)] {
                [("token", .string(token.token)), ("logprob", number(token.logprob)), ("bytes", .list(token.bytes.map { .int(Int($0)) }))]
            }
            return .dictionary([
                ("content", .list(steps.map { .dictionary(entry($0.sampled) + [("top_logprobs", .list($0.top.map { .dictionary(entry($0)) }))]) })),
            ])
        }
    }

    /// `GET /v1/models`.
    public static func models(_ names: [String], created: Int) -> String {
        json(.dictionary([
            ("object", .string("list")),
            ("data", .list(names.map { .dictionary([("id", .string($0)), ("object", .string("model")), ("created", .int(created)), ("owned_by", .string("tandem"))]) })),
        ]))
    }

    /// A Server-Sent Event carrying `json`.
    public static func event(_ json: String) -> String { "data: \(json)\n\n" }

    /// The stream's last event.
    public static let done = "data: [DONE]\n\n"

    private static func chunkObject(_ endpoint: Endpoint) -> String { endpoint == .completions ? "text_completion" : "chat.completion.chunk" }

    private static func reason(_ finishReason: FinishReason?) -> TemplateValue {
        switch finishReason {
        case .stop?: .string("stop")
        case .length?: .string("length")
        case .abort?: .string("abort")
        case nil: .none
        }
    }

    /// Response values hold only strings, numbers, lists and dictionaries, which always encode.
    private static func json(_ value: TemplateValue) -> String { (try? value.jsonText()) ?? "{}" }
}
