/// Why a tokenizer could not be loaded (every case names the file), or text could not be encoded.
public enum TokenizerError: Error, Equatable, CustomStringConvertible {
    /// A file the tokenizer needs is not there (or cannot be opened).
    case missingFile(path: String, detail: String)
    /// A file is not valid for its format (a field of the wrong type, a bad regex …).
    case malformed(path: String, detail: String)
    /// The tokenizer uses a component Tandem does not implement (named).
    case unsupported(path: String, detail: String)
    /// A symbol of the input has no vocabulary entry and the vocabulary has no unknown token to stand for it.
    case unencodable(symbol: String, text: String)

    public var description: String {
        switch self {
        case let .missingFile(path, detail): return "\(path): \(detail)"
        case let .malformed(path, detail): return "\(path) is not a valid tokenizer file: \(detail)"
        case let .unsupported(path, detail): return "\(path): unsupported \(detail)"
        case let .unencodable(symbol, text):
            let shown = text.count > 60 ? String(text.prefix(60)) + "…" : text
            return "cannot encode \(symbol.unicodeScalars.map { "U+" + String($0.value, radix: 16, uppercase: true) }.joined(separator: " ")) "
                + "in \"\(shown)\": the vocabulary has no entry for it and no unk_token"
        }
    }
}
