import TandemTokenizer

extension GGUFFile {
    /// The `tokenizer.ggml.pre` names Tandem reads (llama.cpp's names).
    static let preTokenizerNames = ["gpt-2", "llama-bpe", "qwen2"]

    /// The pre-tokenizer `name` stands for, as tokenizer.json writes it, and whether the name makes llama.cpp
    /// add the beginning-of-sequence token and take a whole word that is a token as that token (`ignore_merges`).
    static func preTokenizer(_ name: String) -> (json: [String: Any], addsBOS: Bool, ignoresMerges: Bool)? {
        switch name {
        case "gpt-2": (["type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true], false, false)
        case "llama-bpe": (split(BytePairTrainer.llama3Pattern), true, true)
        case "qwen2": (split(#"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#), false, false)
        default: nil
        }
    }

    private static func split(_ pattern: String) -> [String: Any] {
        [
            "type": "Sequence",
            "pretokenizers": [
                ["type": "Split", "pattern": ["Regex": pattern], "behavior": "Isolated", "invert": false],
                ["type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false],
            ],
        ]
    }

    /// The tokenizer the file's `tokenizer.ggml.*` keys describe: a byte-level BPE (`tokenizer.ggml.model`
    /// `gpt2`) whose tokens of type control (3) and user-defined (4) are added tokens (special and not), the
    /// pre-tokenizer named by `tokenizer.ggml.pre`, and the beginning-of-sequence token added as llama.cpp adds
    /// it (`tokenizer.ggml.add_bos_token`, else the pre-tokenizer's default).
    ///
    /// - Throws: `TokenizerError` naming the key at fault or the tokenizer kind Tandem does not read.
    public func tokenizer() throws(TokenizerError) -> BytePairTokenizer {
        let metadata = Metadata(file: self)
        func read<T>(_ body: () throws(ModelLoadError) -> T) throws(TokenizerError) -> T {
            do { return try body() } catch { throw .malformed(path: path, detail: error.description) }
        }
        let model = try read { () throws(ModelLoadError) in try metadata.string("tokenizer.ggml.model") }
        guard model == "gpt2" else {
            throw .unsupported(path: path, detail: "tokenizer.ggml.model '\(model)'; Tandem reads byte-level BPE tokenizers ('gpt2')")
        }
        let pre = try read { () throws(ModelLoadError) in try metadata.optionalString("tokenizer.ggml.pre") } ?? "default"
        guard let preTokenizer = Self.preTokenizer(pre) else {
            throw .unsupported(path: path, detail: "tokenizer.ggml.pre '\(pre)'; Tandem reads \(Self.preTokenizerNames.joined(separator: ", "))")
        }
        let tokens = try read { () throws(ModelLoadError) in try metadata.strings("tokenizer.ggml.tokens") }
        let merges = try read { () throws(ModelLoadError) in try metadata.strings("tokenizer.ggml.merges") }
        let types = try read { () throws(ModelLoadError) in try metadata.integers("tokenizer.ggml.token_type") } ?? []
        guard types.isEmpty || types.count == tokens.count else {
            throw .malformed(path: path, detail: "tokenizer.ggml.token_type has \(types.count) entries for \(tokens.count) tokens")
        }
        var vocabulary: [String: Int] = [:]
        var added: [[String: Any]] = []
        for (id, token) in tokens.enumerated() {
            guard vocabulary.updateValue(id, forKey: token) == nil else {
                throw .malformed(path: path, detail: "tokenizer.ggml.tokens holds '\(token)' twice (ids \(vocabulary[token]!) and \(id))")
            }
            let type = types.isEmpty ? 1 : types[id]
            if type == 3 || type == 4 {
                added.append([
                    "id": id, "content": token, "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": type == 3,
                ])
            }
        }
        var config: [String: Any] = [:]
        let addsBOS = try read { () throws(ModelLoadError) in try metadata.flag("tokenizer.ggml.add_bos_token") } ?? preTokenizer.addsBOS
        if let bos = try read({ () throws(ModelLoadError) in try metadata.optionalInteger("tokenizer.ggml.bos_token_id") }) {
            guard bos < tokens.count else { throw .malformed(path: path, detail: "tokenizer.ggml.bos_token_id \(bos) is not among the \(tokens.count) tokens") }
            (config["add_bos_token"], config["bos_token"]) = (addsBOS, tokens[bos])
        } else if addsBOS {
            throw .malformed(path: path, detail: "the tokenizer adds a beginning-of-sequence token but tokenizer.ggml.bos_token_id is missing")
        }
        let json: [String: Any] = [
            "model": [
                "type": "BPE", "vocab": vocabulary, "merges": merges, "ignore_merges": preTokenizer.ignoresMerges, "byte_fallback": false,
            ] as [String: Any],
            "pre_tokenizer": preTokenizer.json,
            "decoder": ["type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true],
            "added_tokens": added,
        ]
        return try BytePairTokenizer(json: json, config: config, path: path)
    }

    /// The tokens `tokenizer.ggml.{bos,eos,padding,unknown}_token_id` name, under transformers' names
    /// (`bos_token` …), for a chat template to refer to.
    public var specialTokens: [String: String] {
        get throws(ModelLoadError) {
            let metadata = Metadata(file: self)
            let tokens = try metadata.strings("tokenizer.ggml.tokens")
            var named: [String: String] = [:]
            for (key, name) in [("bos", "bos_token"), ("eos", "eos_token"), ("padding", "pad_token"), ("unknown", "unk_token")] {
                guard let id = try metadata.optionalInteger("tokenizer.ggml.\(key)_token_id") else { continue }
                guard id < tokens.count else { throw .malformed(path: path, detail: "tokenizer.ggml.\(key)_token_id \(id) is not among the \(tokens.count) tokens") }
                named[name] = tokens[id]
            }
            return named
        }
    }

    /// `tokenizer.chat_template`, if the file has one.
    public var chatTemplate: String? {
        get throws(ModelLoadError) { try Metadata(file: self).optionalString("tokenizer.chat_template") }
    }
}
