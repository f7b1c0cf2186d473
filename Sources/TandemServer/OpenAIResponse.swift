import TandemEngine
import TandemTemplate

/// OpenAI's response bodies and Server-Sent-Event chunks, field for field (`id`, `object`, `created`,
/// `model`, `choices`, `usage`; `logprobs` null), so the `openai` client and others read them unchanged.
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

    /// One choice of a finished request.
    public struct Choice: Equatable, Sendable {
        public var index: Int
        public var text: String
        public var finishReason: FinishReason?
        public init(index: Int, text: String, finishReason: FinishReason?) {
            (self.index, self.text, self.finishReason) = (index, text, finishReason)
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
                .dictionary([("index", .int(choice.index)), ("text", .string(choice.text)), ("logprobs", .none), ("finish_reason", reason(choice.finishReason))])
            case .chatCompletions:
                .dictionary([
                    ("index", .int(choice.index)), ("message", .dictionary([("role", .string("assistant")), ("content", .string(choice.text))])),
                    ("logprobs", .none), ("finish_reason", reason(choice.finishReason)),
                ])
            }
        }
        return json(.dictionary([
            ("id", .string(id)), ("object", .string(endpoint == .completions ? "text_completion" : "chat.completion")),
            ("created", .int(created)), ("model", .string(model)), ("choices", .list(encoded)), ("usage", usage.value),
        ]))
    }

    /// One streamed chunk: a choice's new text (and, for chat, the role on its first chunk), and its finish
    /// reason on its last. `usage` is null in every chunk when the client asked for a usage chunk, absent otherwise.
    public static func chunk(
        _ endpoint: Endpoint, id: String, created: Int, model: String, index: Int, text: String, firstOfChoice: Bool = false,
        finishReason: FinishReason?, usageRequested: Bool
    ) -> String {
        let choice: TemplateValue
        switch endpoint {
        case .completions:
            choice = .dictionary([("index", .int(index)), ("text", .string(text)), ("logprobs", .none), ("finish_reason", reason(finishReason))])
        case .chatCompletions:
            var delta: [(String, TemplateValue)] = []
            if firstOfChoice { delta.append(("role", .string("assistant"))) }
            if !text.isEmpty || (firstOfChoice && finishReason == nil) { delta.append(("content", .string(text))) }
            choice = .dictionary([("index", .int(index)), ("delta", .dictionary(delta)), ("logprobs", .none), ("finish_reason", reason(finishReason))])
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
