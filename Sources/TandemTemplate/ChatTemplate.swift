/// A Hugging Face chat template (`tokenizer_config.json`'s `chat_template`, or `chat_template.jinja`) and the
/// prompt it renders for a conversation, as `transformers`' `apply_chat_template` renders it with `jinja2`:
/// `trim_blocks` and `lstrip_blocks` on, `tojson` without HTML escaping, `raise_exception`, loop controls.
///
/// The template is parsed when it is read: a construct outside the supported subset (macros, includes, blocks,
/// an unknown filter, test, function or method) is a `TemplateError.syntax` naming it and its line then, never
/// a wrong prompt later.
public struct ChatTemplate: Sendable {
    private let nodes: [TemplateNode]

    /// - Throws: `TemplateError.syntax` for a template that does not parse or uses an unsupported construct.
    public init(_ source: String) throws(TemplateError) {
        nodes = try TemplateParser.parse(source)
    }

    /// The prompt for `messages` (a list of message objects, as a client sent them).
    ///
    /// - Parameters:
    ///   - tools: the request's tools (a list of tool objects), or nil (the template sees `tools` as none).
    ///   - addGenerationPrompt: end with the assistant's header, for the model to continue.
    ///   - specialTokens: `bos_token`, `eos_token` and the other special tokens the tokenizer names.
    ///   - extra: further variables (`chat_template_kwargs`).
    /// - Throws: `TemplateError.raised` when the template refuses the conversation, `.render` for a value the
    ///   template cannot use.
    public func render(
        messages: TemplateValue, tools: TemplateValue? = nil, addGenerationPrompt: Bool, specialTokens: [String: String] = [:],
        extra: [String: TemplateValue] = [:]
    ) throws(TemplateError) -> String {
        var context: [String: TemplateValue] = specialTokens.mapValues(TemplateValue.string)
        for (key, value) in extra { context[key] = value }
        context["messages"] = messages
        context["tools"] = tools ?? TemplateValue.none
        context["add_generation_prompt"] = .bool(addGenerationPrompt)
        return try TemplateInterpreter.render(nodes, context: context)
    }
}
