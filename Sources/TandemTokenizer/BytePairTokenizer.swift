import Foundation

/// A byte-level BPE tokenizer (GPT-2, Llama 3, Qwen2 style) read from a Hugging Face `tokenizer.json`, with
/// `tokenizer_config.json` where it says whether to add the beginning-of-sequence token. Encoding runs the
/// stages of the `tokenizers` package in its order: added tokens are cut out of the raw text; the rest is
/// normalized, cut at normalized added tokens, pre-tokenized into words, and each word is merged by BPE;
/// the post-processor's special tokens go around the sequence.
public final class BytePairTokenizer: Tokenizer {
    private let model: BytePairModel
    private let added: AddedVocabulary
    private let normalizer: Normalizer?
    private let preTokenizer: PreTokenizer?
    private let postProcessor: PostProcessor
    /// The bytes each id stands for.
    private let tokenBytes: [[UInt8]]
    private let specialIDs: Set<Int>
    private let tokenIDs: [String: Int]

    public var size: Int { tokenBytes.count }

    /// Reads `tokenizer.json` (and `tokenizer_config.json` if present) from a checkpoint directory.
    ///
    /// - Throws: `TokenizerError.missingFile`, `.malformed` naming the field, `.unsupported` for a component
    ///   that is not byte-level BPE (a WordPiece model, a Metaspace pre-tokenizer …).
    public convenience init(directory: String) throws(TokenizerError) {
        let path = (directory as NSString).appendingPathComponent("tokenizer.json")
        let configPath = (directory as NSString).appendingPathComponent("tokenizer_config.json")
        var config: [String: Any] = [:]
        if FileManager.default.fileExists(atPath: configPath) {
            guard let data = FileManager.default.contents(atPath: configPath),
                let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
            else { throw .malformed(path: configPath, detail: "not a JSON object") }
            config = object
        }
        try self.init(json: try Self.readObject(path), config: config, path: path)
    }

    /// Builds the tokenizer from a decoded tokenizer.json object and tokenizer_config.json object; `path` names
    /// the file in errors.
    public init(json: [String: Any], config: [String: Any] = [:], path: String) throws(TokenizerError) {
        guard let modelJSON = json["model"] as? [String: Any] else { throw .malformed(path: path, detail: "no 'model' object") }
        model = try BytePairModel(json: modelJSON, path: path)
        normalizer = try (json["normalizer"] as? [String: Any]).map { (item) throws(TokenizerError) in try Normalizer(json: item, path: path) }
        preTokenizer = try (json["pre_tokenizer"] as? [String: Any]).map { (item) throws(TokenizerError) in try PreTokenizer(json: item, path: path) }
        let decoderType = (json["decoder"] as? [String: Any])?["type"] as? String
        guard decoderType == "ByteLevel" else {
            throw .unsupported(path: path, detail: "decoder '\(decoderType ?? "null")'; Tandem reads byte-level BPE tokenizers (decoder ByteLevel)")
        }
        added = try AddedVocabulary(json: json["added_tokens"] as? [[String: Any]] ?? [], normalizer: normalizer, path: path)

        var tokenIDs = model.vocabulary
        for token in added.tokens { tokenIDs[String(String.UnicodeScalarView(token.content))] = token.id }
        var tokenBytes = [[UInt8]](repeating: [], count: (tokenIDs.values.max() ?? -1) + 1)
        for (token, id) in model.vocabulary { tokenBytes[id] = ByteLevel.decode(token) }
        for token in added.tokens { tokenBytes[token.id] = ByteLevel.decode(String(String.UnicodeScalarView(token.content))) }
        self.tokenBytes = tokenBytes
        self.tokenIDs = tokenIDs
        specialIDs = Set(added.tokens.filter(\.special).map(\.id))

        var postProcessor = try PostProcessor(json: json["post_processor"] as? [String: Any], path: path)
        // transformers rewrites the template from tokenizer_config's add_bos_token; do the same.
        if let addBOS = config["add_bos_token"] as? Bool, let name = Self.tokenName(config["bos_token"]), let bos = tokenIDs[name] {
            if addBOS && postProcessor.prefix.first != bos { postProcessor.prefix.insert(bos, at: 0) }
            if !addBOS && postProcessor.prefix.first == bos { postProcessor.prefix.removeFirst() }
        }
        // Ids the post-processor adds must be tokens: an id no token has would reach the model's embedding.
        let known = Set(tokenIDs.values)
        if let stray = (postProcessor.prefix + postProcessor.suffix).first(where: { !known.contains($0) }) {
            throw .malformed(path: path, detail: "post_processor adds id \(stray), which is neither in model.vocab nor in added_tokens")
        }
        self.postProcessor = postProcessor
    }

    public func encode(_ text: String, addSpecialTokens: Bool = true) throws(TokenizerError) -> [Int] {
        var ids = addSpecialTokens ? postProcessor.prefix : []
        for segment in added.split(text, normalized: false) {
            switch segment {
            case let .token(id): ids.append(id)
            case let .text(raw):
                for piece in added.split(normalizer?.apply(raw) ?? raw, normalized: true) {
                    switch piece {
                    case let .token(id): ids.append(id)
                    case let .text(normalized):
                        for word in preTokenizer?.apply([normalized]) ?? [normalized] { ids += try model.tokenize(word) }
                    }
                }
            }
        }
        if addSpecialTokens { ids += postProcessor.suffix }
        return ids
    }

    public func decode(_ ids: [Int], skipSpecialTokens: Bool = true) -> String {
        var bytes: [UInt8] = []
        for id in ids where !(skipSpecialTokens && specialIDs.contains(id)) { bytes += self.bytes(of: id) }
        return String(decoding: bytes, as: UTF8.self)
    }

    public func bytes(of id: Int) -> [UInt8] { id >= 0 && id < tokenBytes.count ? tokenBytes[id] : [] }

    public func isSpecial(_ id: Int) -> Bool { specialIDs.contains(id) }

    public func id(of token: String) -> Int? { tokenIDs[token] }

    /// A token named in tokenizer_config.json: a string or an object with a `content`.
    static func tokenName(_ value: Any?) -> String? {
        (value as? String) ?? ((value as? [String: Any])?["content"] as? String)
    }

    private static func readObject(_ path: String) throws(TokenizerError) -> [String: Any] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw .missingFile(path: path, detail: "cannot read the tokenizer (a checkpoint directory needs tokenizer.json)")
        }
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw .malformed(path: path, detail: "not a JSON object")
        }
        return object
    }
}
