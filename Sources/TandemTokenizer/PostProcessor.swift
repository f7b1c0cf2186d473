import Foundation

/// The `post_processor` of a tokenizer.json, as it affects the ids of one sequence: the special tokens a
/// `TemplateProcessing` puts around it (Llama 3's `<|begin_of_text|>`). `ByteLevel` post-processing only moves
/// offsets and adds no ids.
struct PostProcessor: Sendable {
    /// Ids before and after the sequence.
    var prefix: [Int] = []
    var suffix: [Int] = []

    init() {}

    /// Parses a `post_processor` object (nil or null: nothing added); `path` names the file in errors.
    init(json: [String: Any]?, path: String) throws(TokenizerError) {
        guard let json else { return }
        let type = json["type"] as? String ?? "(no type)"
        switch type {
        case "ByteLevel":
            return
        case "Sequence":
            guard let items = json["processors"] as? [[String: Any]] else {
                throw .malformed(path: path, detail: "post_processor Sequence has no processors list")
            }
            for item in items {
                let part = try PostProcessor(json: item, path: path)
                prefix += part.prefix
                suffix = part.suffix + suffix
            }
        case "TemplateProcessing":
            guard let single = json["single"] as? [[String: Any]] else {
                throw .malformed(path: path, detail: "TemplateProcessing has no 'single' template")
            }
            let specials = json["special_tokens"] as? [String: [String: Any]] ?? [:]
            var seenSequence = false
            for item in single {
                if item["Sequence"] != nil {
                    seenSequence = true
                } else if let special = item["SpecialToken"] as? [String: Any], let name = special["id"] as? String {
                    guard let raw = specials[name]?["ids"] as? [Any] else {
                        throw .malformed(path: path, detail: "TemplateProcessing uses special token '\(name)' without ids in special_tokens")
                    }
                    let ids = raw.compactMap(BytePairModel.tokenID)
                    guard ids.count == raw.count else {
                        throw .malformed(path: path, detail: "special token '\(name)' has ids \(raw) (integers in 0..<\(BytePairModel.idLimit) expected)")
                    }
                    if seenSequence { suffix += ids } else { prefix += ids }
                } else {
                    throw .malformed(path: path, detail: "TemplateProcessing item \(item) is neither a Sequence nor a SpecialToken")
                }
            }
        default:
            throw .unsupported(path: path, detail: "post_processor '\(type)'; Tandem supports TemplateProcessing, ByteLevel and Sequence")
        }
    }
}
