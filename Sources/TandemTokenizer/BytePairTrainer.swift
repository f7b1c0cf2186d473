import Foundation

/// Trains a byte-level BPE vocabulary in the Llama 3 layout, for the checkpoints `tandem make-model` writes:
/// words are cut with Llama 3's pattern and mapped to byte-level characters; starting from the 256 byte
/// symbols, the most frequent adjacent pair (ties: the lower ids) is merged into a new symbol until the
/// vocabulary is full. Pair counts are kept incrementally, so only the words holding the merged pair are
/// revisited.
public enum BytePairTrainer {
    /// The beginning-of-text special token the trained tokenizer has.
    public static let beginOfText = "<|begin_of_text|>"
    /// The end-of-text special token the trained tokenizer has.
    public static let endOfText = "<|end_of_text|>"
    public static let llama3Pattern =
        #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#

    /// A tokenizer.json object with `size` ids: 256 bytes, `size − 258` merges, then the two special tokens.
    ///
    /// - Throws: `TokenizerError.unsupported` when the corpus has too few distinct pairs for `size`.
    public static func tokenizerJSON(corpus: [String], size: Int) throws -> [String: Any] {
        let merges = try train(corpus: corpus, merges: size - 256 - 2)
        var vocabulary: [String: Int] = [:]
        var symbols = ByteLevel.scalarForByte.map { String($0) }
        for (id, symbol) in symbols.enumerated() { vocabulary[symbol] = id }
        for (left, right) in merges {
            let merged = symbols[left] + symbols[right]
            vocabulary[merged] = symbols.count
            symbols.append(merged)
        }
        let bos = symbols.count
        func special(_ content: String, _ id: Int) -> [String: Any] {
            ["id": id, "content": content, "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true]
        }
        return [
            "version": "1.0",
            "truncation": NSNull(), "padding": NSNull(), "normalizer": NSNull(),
            "added_tokens": [special(beginOfText, bos), special(endOfText, bos + 1)],
            "pre_tokenizer": [
                "type": "Sequence",
                "pretokenizers": [
                    ["type": "Split", "pattern": ["Regex": llama3Pattern], "behavior": "Isolated", "invert": false],
                    ["type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false],
                ],
            ],
            "post_processor": [
                "type": "Sequence",
                "processors": [
                    ["type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true],
                    [
                        "type": "TemplateProcessing",
                        "single": [["SpecialToken": ["id": beginOfText, "type_id": 0]], ["Sequence": ["id": "A", "type_id": 0]]],
                        "pair": [
                            ["SpecialToken": ["id": beginOfText, "type_id": 0]], ["Sequence": ["id": "A", "type_id": 0]],
                            ["SpecialToken": ["id": beginOfText, "type_id": 1]], ["Sequence": ["id": "B", "type_id": 1]],
                        ],
                        "special_tokens": [beginOfText: ["id": beginOfText, "ids": [bos], "tokens": [beginOfText]]],
                    ],
                ],
            ],
            "decoder": ["type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true],
            "model": [
                "type": "BPE", "dropout": NSNull(), "unk_token": NSNull(), "continuing_subword_prefix": NSNull(),
                "end_of_word_suffix": NSNull(), "fuse_unk": false, "byte_fallback": false, "ignore_merges": true,
                "vocab": vocabulary, "merges": merges.map { [symbols[$0.0], symbols[$0.1]] },
            ],
        ]
    }

    /// The first `count` merges learned from `corpus`, as pairs of symbol ids (new symbols numbered from 256).
    static func train(corpus: [String], merges wanted: Int) throws -> [(Int, Int)] {
        let pattern = try Regex(llama3Pattern).matchingSemantics(.unicodeScalar)
        var wordCounts: [String: Int] = [:]
        for text in corpus {
            for match in text.matches(of: pattern) {
                wordCounts[ByteLevel.encode(text.unicodeScalars[match.range]), default: 0] += 1
            }
        }
        // Sorted so that the ids of equal counts — and so the result — never depend on hashing.
        let sortedWords = wordCounts.sorted { $0.key < $1.key }
        var words = sortedWords.map { entry in entry.key.unicodeScalars.map { Int(ByteLevel.byteForScalar[$0]!) } }
        let frequency = sortedWords.map(\.value)

        func key(_ left: Int, _ right: Int) -> UInt64 { UInt64(left) << 32 | UInt64(right) }
        var pairCounts: [UInt64: Int] = [:]
        var pairWords: [UInt64: Set<Int>] = [:]
        func count(_ word: Int, _ sign: Int) {
            let symbols = words[word]
            guard symbols.count > 1 else { return }
            for index in 0..<(symbols.count - 1) {
                let pair = key(symbols[index], symbols[index + 1])
                pairCounts[pair, default: 0] += sign * frequency[word]
                if sign > 0 { pairWords[pair, default: []].insert(word) }
            }
        }
        for word in words.indices { count(word, 1) }

        var merges: [(Int, Int)] = []
        while merges.count < wanted {
            var best: UInt64 = 0
            var bestCount = 0
            for (pair, pairCount) in pairCounts where pairCount > bestCount || (pairCount == bestCount && pairCount > 0 && pair < best) {
                best = pair
                bestCount = pairCount
            }
            guard bestCount > 0 else {
                throw TokenizerError.unsupported(
                    path: "tokenizer.json", detail: "a vocabulary of \(wanted + 258): the training corpus yields only \(merges.count) merges")
            }
            let (left, right) = (Int(best >> 32), Int(best & 0xFFFF_FFFF))
            let merged = 256 + merges.count
            merges.append((left, right))
            for word in pairWords[best] ?? [] {
                count(word, -1)
                var symbols: [Int] = []
                var index = 0
                let old = words[word]
                while index < old.count {
                    if index + 1 < old.count && old[index] == left && old[index + 1] == right {
                        symbols.append(merged)
                        index += 2
                    } else {
                        symbols.append(old[index])
                        index += 1
                    }
                }
                words[word] = symbols
                count(word, 1)
            }
            pairCounts[best] = nil
            pairWords[best] = nil
        }
        return merges
    }
}
