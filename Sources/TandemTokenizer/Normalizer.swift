import Foundation

/// The `normalizer` of a tokenizer.json: how text is rewritten before it is split (Unicode normal forms,
/// lowercasing, or a sequence of them).
indirect enum Normalizer: Sendable {
    case nfc, nfd, nfkc, nfkd, lowercase
    case sequence([Normalizer])

    /// Parses a `normalizer` object; `path` names the file in errors.
    init(json: [String: Any], path: String) throws(TokenizerError) {
        let type = json["type"] as? String ?? "(no type)"
        switch type {
        case "NFC": self = .nfc
        case "NFD": self = .nfd
        case "NFKC": self = .nfkc
        case "NFKD": self = .nfkd
        case "Lowercase": self = .lowercase
        case "Sequence":
            guard let items = json["normalizers"] as? [[String: Any]] else {
                throw .malformed(path: path, detail: "normalizer Sequence has no normalizers list")
            }
            var parts: [Normalizer] = []
            for item in items { parts.append(try Normalizer(json: item, path: path)) }
            self = .sequence(parts)
        default:
            throw .unsupported(path: path, detail: "normalizer '\(type)'; Tandem supports NFC, NFD, NFKC, NFKD, Lowercase and Sequence")
        }
    }

    func apply(_ text: String) -> String {
        switch self {
        case .nfc: text.precomposedStringWithCanonicalMapping
        case .nfd: text.decomposedStringWithCanonicalMapping
        case .nfkc: text.precomposedStringWithCompatibilityMapping
        case .nfkd: text.decomposedStringWithCompatibilityMapping
        case .lowercase: text.lowercased()
        case let .sequence(parts): parts.reduce(text) { $1.apply($0) }
        }
    }
}
