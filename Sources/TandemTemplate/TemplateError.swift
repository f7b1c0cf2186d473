/// Why a chat template could not be read or rendered.
public enum TemplateError: Error, Equatable, CustomStringConvertible {
    /// The template does not parse, or uses a construct this interpreter does not implement (named, with its
    /// line): found when the template is read, never as a wrong prompt later.
    case syntax(line: Int, detail: String)
    /// Rendering failed: a type error, an undefined value used where one is needed.
    case render(String)
    /// The template called `raise_exception(message)` (the conversation is not one it accepts).
    case raised(String)

    public var description: String {
        switch self {
        case let .syntax(line, detail): "chat template, line \(line): \(detail)"
        case let .render(detail): "chat template: \(detail)"
        case let .raised(message): "chat template refused the conversation: \(message)"
        }
    }
}
