import Foundation

/// The `added_tokens` of a tokenizer.json: strings matched in the text before any splitting (special tokens such
/// as `<|im_start|>`, and tokens added after training), each becoming its id as a whole.
struct AddedVocabulary: Sendable {
    struct Token: Sendable {
        let id: Int
        /// What the token matches and decodes to: its content, normalized for a `normalized` token (as
        /// `tokenizers` stores it — decoding gives the normalized form too).
        let content: [Unicode.Scalar]
        let special: Bool
        /// Swallow the whitespace before / after a match.
        let leftStrip: Bool
        let rightStrip: Bool
        /// Match only as a whole word.
        let singleWord: Bool
        /// Matched in normalized text (true) or in the raw text (false).
        let normalized: Bool
    }

    /// A piece of text after matching: plain text, or an added token.
    enum Segment: Equatable {
        case text(String)
        case token(Int)
    }

    let tokens: [Token]
    /// Candidate tokens by first scalar, longest first (leftmost-longest matching).
    private let byFirstScalar: [Unicode.Scalar: [Token]]

    /// Parses `added_tokens`; contents of `normalized` tokens are normalized as the text they match will be.
    init(json: [[String: Any]], normalizer: Normalizer?, path: String) throws(TokenizerError) {
        var tokens: [Token] = []
        for entry in json {
            guard let id = BytePairModel.tokenID(entry["id"]), let content = entry["content"] as? String, !content.isEmpty else {
                throw .malformed(path: path, detail: "added_tokens entry \(entry) needs an id (an integer in 0..<\(BytePairModel.idLimit)) and a non-empty content")
            }
            let normalized = entry["normalized"] as? Bool ?? !(entry["special"] as? Bool ?? false)
            let matched = normalized ? (normalizer?.apply(content) ?? content) : content
            tokens.append(
                Token(
                    id: id, content: Array(matched.unicodeScalars), special: entry["special"] as? Bool ?? false,
                    leftStrip: entry["lstrip"] as? Bool ?? false, rightStrip: entry["rstrip"] as? Bool ?? false,
                    singleWord: entry["single_word"] as? Bool ?? false, normalized: normalized))
        }
        self.tokens = tokens
        var byFirstScalar: [Unicode.Scalar: [Token]] = [:]
        for token in tokens { byFirstScalar[token.content[0], default: []].append(token) }
        for key in byFirstScalar.keys { byFirstScalar[key]!.sort { $0.content.count > $1.content.count } }
        self.byFirstScalar = byFirstScalar
    }

    /// Cuts `text` at the tokens whose `normalized` flag equals `normalized`: leftmost match first, the longest
    /// at a position; `lstrip`/`rstrip` take the neighbouring whitespace into the match.
    func split(_ text: String, normalized: Bool) -> [Segment] {
        let scalars = Array(text.unicodeScalars)
        var segments: [Segment] = []
        var pieceStart = 0
        var index = 0
        func flush(upTo end: Int) {
            if pieceStart < end {
                var view = String.UnicodeScalarView()
                view.append(contentsOf: scalars[pieceStart..<end])
                segments.append(.text(String(view)))
            }
        }
        while index < scalars.count {
            guard let token = match(at: index, in: scalars, normalized: normalized) else {
                index += 1
                continue
            }
            var start = index
            var end = index + token.content.count
            if token.leftStrip { while start > pieceStart && scalars[start - 1].properties.isWhitespace { start -= 1 } }
            if token.rightStrip { while end < scalars.count && scalars[end].properties.isWhitespace { end += 1 } }
            flush(upTo: start)
            segments.append(.token(token.id))
            pieceStart = end
            index = end
        }
        flush(upTo: scalars.count)
        return segments
    }

    private func match(at index: Int, in scalars: [Unicode.Scalar], normalized: Bool) -> Token? {
        guard let candidates = byFirstScalar[scalars[index]] else { return nil }
        for token in candidates where token.normalized == normalized && index + token.content.count <= scalars.count {
            guard scalars[index..<(index + token.content.count)].elementsEqual(token.content) else { continue }
            if token.singleWord {
                let end = index + token.content.count
                if index > 0 && Self.isWordScalar(scalars[index - 1]) { continue }
                if end < scalars.count && Self.isWordScalar(scalars[end]) { continue }
            }
            return token
        }
        return nil
    }

    private static func isWordScalar(_ scalar: Unicode.Scalar) -> Bool {
        scalar.properties.isAlphabetic || scalar.properties.numericType != nil || scalar == "_"
    }
}
