// A chat template and a conversation (JSON after the first NUL byte): the template is refused with a
// `TemplateError` or parsed, and rendering either gives a prompt or a `TemplateError` — no crash, no hang
// (the interpreter's loop and output budgets), whatever the template or the messages.
import FuzzSupport
import TandemTemplate

fuzzerMain { input in
    let split = input.firstIndex(of: 0) ?? input.count
    guard let template = try? ChatTemplate(String(decoding: input[0..<split], as: UTF8.self)) else { return }
    let messages = (try? TemplateValue(jsonText: String(decoding: input[min(split + 1, input.count)...], as: UTF8.self)))
        ?? .list([.dictionary([("role", .string("user")), ("content", .string("Hi"))])])
    _ = try? template.render(messages: messages, addGenerationPrompt: true, specialTokens: ["bos_token": "<s>", "eos_token": "</s>"])
}
