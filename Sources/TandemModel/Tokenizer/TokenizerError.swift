/// Why text could not be encoded.
public enum TokenizerError: Error, Equatable, CustomStringConvertible {
    /// A symbol of the input has no vocabulary entry and the vocabulary has no unknown token to stand for it.
    case unencodable(symbol: String, text: String)

    public var description: String {
        switch self {
        case let .unencodable(symbol, text):
            let shown = text.count > 60 ? String(text.prefix(60)) + "…" : text
            return "cannot encode \(symbol.unicodeScalars.map { "U+" + String($0.value, radix: 16, uppercase: true) }.joined(separator: " ")) "
                + "in \"\(shown)\": the vocabulary has no entry for it and no unk_token"
        }
    }
}
