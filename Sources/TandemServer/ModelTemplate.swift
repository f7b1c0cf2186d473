import Foundation
import TandemModel
import TandemTemplate

/// A checkpoint's chat template and the special tokens its template refers to, read as transformers reads
/// them: `chat_template.jinja` if present, else `tokenizer_config.json`'s `chat_template` (a string, or a list
/// of named templates of which `default` is used); `bos_token`, `eos_token`, `pad_token`, `unk_token` as strings
/// or `{"content": …}` objects. A GGUF file's are its `tokenizer.chat_template` and the tokens its
/// `tokenizer.ggml.*_token_id` keys name.
public struct ModelTemplate: Sendable {
    /// Nil when the checkpoint has none (only `/v1/completions` can serve it).
    public let template: ChatTemplate?
    public let specialTokens: [String: String]

    /// - Throws: `TemplateError.syntax` for a template the interpreter cannot run (named with its line), or
    ///   `.render` for a tokenizer_config.json that is not JSON.
    public init(directory: String) throws(TemplateError) {
        let configURL = URL(fileURLWithPath: directory).appendingPathComponent("tokenizer_config.json")
        var config: [(String, TemplateValue)] = []
        if let data = FileManager.default.contents(atPath: configURL.path) {
            guard case let .dictionary(pairs) = try TemplateValue(jsonText: String(decoding: data, as: UTF8.self)) else {
                throw .render("\(configURL.path) is not a JSON object")
            }
            config = pairs
        }
        var tokens: [String: String] = [:]
        for name in ["bos_token", "eos_token", "pad_token", "unk_token"] {
            switch config.first(where: { $0.0 == name })?.1 {
            case let .string(text)?: tokens[name] = text
            case let .dictionary(fields)?: if case let .string(text)? = fields.first(where: { $0.0 == "content" })?.1 { tokens[name] = text }
            default: break
            }
        }
        specialTokens = tokens
        let file = URL(fileURLWithPath: directory).appendingPathComponent("chat_template.jinja")
        var source: String?
        if let data = FileManager.default.contents(atPath: file.path) {
            source = String(decoding: data, as: UTF8.self)
        } else {
            switch config.first(where: { $0.0 == "chat_template" })?.1 {
            case let .string(text)?: source = text
            case let .list(named)?:
                for item in named {
                    guard case let .dictionary(fields) = item, fields.first(where: { $0.0 == "name" })?.1 == .string("default"),
                        case let .string(text)? = fields.first(where: { $0.0 == "template" })?.1
                    else { continue }
                    source = text
                }
            default: break
            }
        }
        template = try source.map { (text) throws(TemplateError) in try ChatTemplate(text) }
    }

    /// The template of `model`, a checkpoint directory or a GGUF file (`ModelFiles`).
    ///
    /// - Throws: `TemplateError`, or `ModelLoadError` for a GGUF file whose keys cannot be read.
    public init(model: String) throws {
        guard ModelFiles.isGGUF(model) else {
            try self.init(directory: model)
            return
        }
        let file = try GGUFFile(path: model)
        self.init(template: try file.chatTemplate.map { (text) throws(TemplateError) in try ChatTemplate(text) }, specialTokens: try file.specialTokens)
    }

    private init(template: ChatTemplate?, specialTokens: [String: String]) {
        self.template = template
        self.specialTokens = specialTokens
    }
}
