import TandemEngine
import TandemTemplate

/// A `POST /v1/chat/completions` body, checked field by field. `messages` are kept as the client sent them
/// (with text parts joined) for the checkpoint's chat template, which decides what roles and fields mean.
public struct ChatCompletionRequest: Equatable, Sendable {
    public var model: String
    /// A non-empty list of message objects, each with a `role` and text `content` (or none, for an assistant
    /// message that only calls tools).
    public var messages: TemplateValue
    /// The request's tools, for the template (Tandem does not constrain the output to them).
    public var tools: TemplateValue?
    public var addGenerationPrompt: Bool
    /// Further variables for the template (vLLM's `chat_template_kwargs`).
    public var templateArguments: [String: TemplateValue]
    /// `max_tokens` nil: up to the context.
    public var sampling: SamplingParams
    public var maxTokens: Int?
    public var n: Int
    public var stream: Bool
    public var includeUsage: Bool

    static let roles: Set<String> = ["system", "developer", "user", "assistant", "tool"]

    /// - Throws: `APIError` (400) naming the first field that is missing, of the wrong type, out of range,
    ///   unsupported or unknown.
    public init(body: TemplateValue) throws(APIError) {
        var fields = try RequestFields(body)
        guard let model = try fields.string("model") else { throw .invalid("model", "model is required") }
        self.model = model
        guard let messages = fields.value("messages") else { throw .invalid("messages", "messages is required") }
        self.messages = try Self.messages(messages)
        if let tools = fields.value("tools") {
            guard case let .list(items) = tools, items.allSatisfy({ if case .dictionary = $0 { true } else { false } }) else {
                throw .invalid("tools", "tools must be a list of tool objects")
            }
            self.tools = tools
        }
        if let choice = fields.value("tool_choice"), choice != .string("auto"), choice != .string("none") {
            throw .invalid("tool_choice", "tool_choice \(choice.representationForError) is not supported by Tandem (only \"auto\" and \"none\")")
        }
        _ = try fields.bool("parallel_tool_calls")
        addGenerationPrompt = try fields.bool("add_generation_prompt") ?? true
        templateArguments = [:]
        if let arguments = fields.value("chat_template_kwargs") {
            guard case let .dictionary(pairs) = arguments else { throw .invalid("chat_template_kwargs", "chat_template_kwargs must be an object") }
            for (key, value) in pairs where !["messages", "tools", "add_generation_prompt"].contains(key) { templateArguments[key] = value }
        }
        let legacy = try fields.integer("max_tokens", in: 1...Int(Int32.max))
        let current = try fields.integer("max_completion_tokens", in: 1...Int(Int32.max))
        if let legacy, let current, legacy != current {
            throw .invalid("max_completion_tokens", "max_tokens (\(legacy)) and max_completion_tokens (\(current)) disagree")
        }
        maxTokens = current ?? legacy
        var sampling = try SamplingFields.read(&fields, maxTokens: maxTokens)
        n = try fields.integer("n", in: 1...CompletionRequest.maximumChoices) ?? 1
        (stream, includeUsage) = try SamplingFields.streaming(&fields)
        let top = try fields.integer("top_logprobs", in: 0...TokenLogprobs.maximumCount)
        if try fields.bool("logprobs") == true {
            sampling.logprobs = top ?? 0
        } else if top != nil {
            throw .invalid("top_logprobs", "top_logprobs needs logprobs: true")
        }
        self.sampling = sampling
        try fields.unsupported("response_format") { $0 == .dictionary([("type", .string("text"))]) }
        try fields.finish()
    }

    private static func messages(_ value: TemplateValue) throws(APIError) -> TemplateValue {
        guard case let .list(items) = value, !items.isEmpty else { throw .invalid("messages", "messages must be a non-empty list") }
        var checked: [TemplateValue] = []
        for (index, item) in items.enumerated() {
            let name = "messages[\(index)]"
            guard case var .dictionary(pairs) = item else { throw .invalid(name, "\(name) must be an object") }
            guard case let .string(role)? = pairs.first(where: { $0.0 == "role" })?.1 else { throw .invalid("\(name).role", "\(name).role must be a string") }
            guard roles.contains(role) else { throw .invalid("\(name).role", "\(name).role '\(role)' is not one of \(roles.sorted().joined(separator: ", "))") }
            if let contentIndex = pairs.firstIndex(where: { $0.0 == "content" }) {
                switch pairs[contentIndex].1 {
                case .string, .none: break
                case let .list(parts):
                    var texts: [String] = []
                    for (partIndex, part) in parts.enumerated() {
                        guard case let .dictionary(fields) = part, fields.first(where: { $0.0 == "type" })?.1 == .string("text"),
                            case let .string(text)? = fields.first(where: { $0.0 == "text" })?.1
                        else {
                            throw .invalid("\(name).content[\(partIndex)]", "\(name).content[\(partIndex)] must be a text part ({\"type\": \"text\", \"text\": …}); Tandem's models read text only")
                        }
                        texts.append(text)
                    }
                    // As vLLM gives text parts to a template that expects a string.
                    pairs[contentIndex].1 = .string(texts.joined(separator: "\n"))
                default:
                    throw .invalid("\(name).content", "\(name).content must be a string or a list of text parts")
                }
            } else if role != "assistant" {
                throw .invalid("\(name).content", "\(name).content is required for role \(role)")
            }
            checked.append(.dictionary(pairs))
        }
        return .list(checked)
    }
}
