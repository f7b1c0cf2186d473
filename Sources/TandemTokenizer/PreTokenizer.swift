/// The `pre_tokenizer` of a tokenizer.json: how a segment of text is cut into the words BPE runs on (each word
/// is tokenized on its own, so no token crosses a cut).
indirect enum PreTokenizer: @unchecked Sendable {
    /// What a split does with the pieces its pattern matches (`tokenizers`' SplitDelimiterBehavior).
    enum Behavior: String {
        case isolated = "Isolated", removed = "Removed", mergedWithPrevious = "MergedWithPrevious"
        case mergedWithNext = "MergedWithNext", contiguous = "Contiguous"
    }

    /// Cut at a pattern's matches; `invert` swaps matches and gaps.
    case split(Regex<AnyRegexOutput>, Behavior, invert: Bool)
    /// GPT-2's byte-level step: optionally a leading space, optionally GPT-2's own split, then every byte of
    /// every piece becomes its byte-level character.
    case byteLevel(addPrefixSpace: Bool, useRegex: Bool)
    case sequence([PreTokenizer])

    /// GPT-2's word pattern, used by `ByteLevel` when `use_regex` is set.
    private static let gpt2Pattern = #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#

    /// Parses a `pre_tokenizer` object; `path` names the file in errors.
    init(json: [String: Any], path: String) throws(TokenizerError) {
        let type = json["type"] as? String ?? "(no type)"
        switch type {
        case "ByteLevel":
            self = .byteLevel(
                addPrefixSpace: json["add_prefix_space"] as? Bool ?? true, useRegex: json["use_regex"] as? Bool ?? true)
        case "Split":
            let behaviorName = json["behavior"] as? String ?? "(none)"
            guard let behavior = Behavior(rawValue: behaviorName) else {
                throw .malformed(path: path, detail: "Split pre_tokenizer has an unknown behavior '\(behaviorName)'")
            }
            let pattern = json["pattern"] as? [String: Any]
            let source: String
            if let regex = pattern?["Regex"] as? String {
                source = regex
            } else if let literal = pattern?["String"] as? String {
                source = Self.escaped(literal)
            } else {
                throw .malformed(path: path, detail: "Split pre_tokenizer needs a pattern {\"Regex\": …} or {\"String\": …}")
            }
            self = .split(try Self.compile(source, path: path), behavior, invert: json["invert"] as? Bool ?? false)
        case "Digits":
            let pattern = (json["individual_digits"] as? Bool ?? false) ? #"\p{N}"# : #"\p{N}+"#
            self = .split(try Self.compile(pattern, path: path), .isolated, invert: false)
        case "Sequence":
            guard let items = json["pretokenizers"] as? [[String: Any]] else {
                throw .malformed(path: path, detail: "pre_tokenizer Sequence has no pretokenizers list")
            }
            var parts: [PreTokenizer] = []
            for item in items { parts.append(try PreTokenizer(json: item, path: path)) }
            self = .sequence(parts)
        default:
            throw .unsupported(path: path, detail: "pre_tokenizer '\(type)'; Tandem supports ByteLevel, Split, Digits and Sequence")
        }
    }

    /// Cuts `pieces` further.
    func apply(_ pieces: [String]) -> [String] {
        switch self {
        case let .sequence(parts):
            return parts.reduce(pieces) { $1.apply($0) }
        case let .split(regex, behavior, invert):
            return pieces.flatMap { Self.split($0, regex, behavior, invert: invert) }
        case let .byteLevel(addPrefixSpace, useRegex):
            return pieces.flatMap { piece -> [String] in
                let text = addPrefixSpace && !piece.hasPrefix(" ") ? " " + piece : piece
                let words = useRegex ? Self.split(text, Self.gpt2Regex, .isolated, invert: false) : [text]
                return words.map { ByteLevel.encode($0.unicodeScalars[...]) }
            }
        }
    }

    nonisolated(unsafe) private static let gpt2Regex = try! Regex(gpt2Pattern).matchingSemantics(.unicodeScalar)

    private static func compile(_ pattern: String, path: String) throws(TokenizerError) -> Regex<AnyRegexOutput> {
        do {
            return try Regex(pattern).matchingSemantics(.unicodeScalar)
        } catch {
            throw .unsupported(path: path, detail: "pre_tokenizer pattern \(pattern) (\(error))")
        }
    }

    private static func escaped(_ literal: String) -> String {
        var result = ""
        for character in literal {
            if "\\^$.|?*+()[]{}-/".contains(character) { result.append("\\") }
            result.append(character)
        }
        return result
    }

    /// One split, as `tokenizers` does it: the text as alternating gaps and matches (empty ones dropped), then
    /// combined by `behavior`.
    private static func split(_ text: String, _ regex: Regex<AnyRegexOutput>, _ behavior: Behavior, invert: Bool) -> [String] {
        // Ranges index scalars, not characters: a match may start inside a grapheme cluster.
        let scalars = text.unicodeScalars
        var parts: [(text: String, isMatch: Bool)] = []
        var cursor = scalars.startIndex
        for match in text.matches(of: regex) where !match.range.isEmpty {
            if cursor < match.range.lowerBound { parts.append((String(scalars[cursor..<match.range.lowerBound]), invert)) }
            parts.append((String(scalars[match.range]), !invert))
            cursor = match.range.upperBound
        }
        if cursor < scalars.endIndex { parts.append((String(scalars[cursor...]), invert)) }

        var result: [String] = []
        var pendingPrefix = ""
        var previousWasMatch = false
        for part in parts {
            switch behavior {
            case .isolated:
                result.append(part.text)
            case .removed:
                if !part.isMatch { result.append(part.text) }
            case .mergedWithPrevious:
                if part.isMatch && !result.isEmpty { result[result.count - 1] += part.text } else { result.append(part.text) }
            case .mergedWithNext:
                if part.isMatch {
                    pendingPrefix += part.text
                } else {
                    result.append(pendingPrefix + part.text)
                    pendingPrefix = ""
                }
            case .contiguous:
                if part.isMatch && previousWasMatch && !result.isEmpty { result[result.count - 1] += part.text } else { result.append(part.text) }
            }
            previousWasMatch = part.isMatch
        }
        if !pendingPrefix.isEmpty { result.append(pendingPrefix) }
        return result
    }
}
