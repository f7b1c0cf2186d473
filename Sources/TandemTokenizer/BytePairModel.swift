import Foundation
import Synchronization

/// The `model` of a tokenizer.json of type BPE: a vocabulary and ranked merges. A word starts as one symbol
/// per character; the adjacent pair with the lowest merge rank (leftmost on ties) is merged until no pair has
/// a merge — the same result `tokenizers` computes with its priority queue.
final class BytePairModel: Sendable {
    /// Token id of each vocabulary string.
    let vocabulary: [String: Int]
    /// (left id, right id) packed into 64 bits → (rank, merged id).
    private let merges: [UInt64: (rank: Int32, merged: Int32)]
    private let unknownID: Int?
    private let fuseUnknown: Bool
    /// A word that is itself in the vocabulary is one token, without merging (Llama 3's `ignore_merges`).
    private let ignoreMerges: Bool
    /// Characters outside the vocabulary become `<0xXX>` tokens, one per UTF-8 byte.
    private let byteFallback: Bool
    /// Tokenized words; prompts repeat words, and BPE is the costly step.
    private let cache = Mutex<[String: [Int]]>([:])
    private static let cacheLimit = 100_000

    /// Parses a `model` object; `path` names the file in errors.
    /// Ids a tokenizer may use: 0..<idLimit (the largest vocabularies in use have about 2¹⁸ tokens; an id far
    /// beyond would make the id → bytes table that size).
    static let idLimit = 1 << 24

    /// A token id from JSON: an integer exactly (not 1.5), in 0..<idLimit; nil otherwise.
    static func tokenID(_ value: Any?) -> Int? {
        guard let number = value as? NSNumber, let id = Int(exactly: number.doubleValue), NSNumber(value: id) == number,
            (0..<idLimit).contains(id)
        else { return nil }
        return id
    }

    init(json: [String: Any], path: String) throws(TokenizerError) {
        let type = json["type"] as? String ?? "(no type)"
        guard type == "BPE" else {
            throw .unsupported(path: path, detail: "tokenizer model '\(type)'; Tandem reads byte-level BPE tokenizers")
        }
        if let dropout = json["dropout"] as? Double, dropout > 0 {
            throw .unsupported(path: path, detail: "BPE dropout \(dropout) (tokenization would not be deterministic)")
        }
        for key in ["continuing_subword_prefix", "end_of_word_suffix"] {
            if let affix = json[key] as? String, !affix.isEmpty {
                throw .unsupported(path: path, detail: "BPE \(key) '\(affix)' (a WordPiece-style affix, not byte-level BPE)")
            }
        }
        guard let rawVocabulary = json["vocab"] as? [String: Any] else {
            throw .malformed(path: path, detail: "model.vocab is missing or not an object")
        }
        var vocabulary: [String: Int] = [:]
        for (token, value) in rawVocabulary {
            guard let id = Self.tokenID(value) else {
                throw .malformed(path: path, detail: "model.vocab entry '\(token)' has no valid id (an integer in 0..<\(Self.idLimit))")
            }
            vocabulary[token] = id
        }
        self.vocabulary = vocabulary

        guard let rawMerges = json["merges"] as? [Any] else {
            throw .malformed(path: path, detail: "model.merges is missing or not a list")
        }
        var merges: [UInt64: (rank: Int32, merged: Int32)] = [:]
        merges.reserveCapacity(rawMerges.count)
        for (rank, entry) in rawMerges.enumerated() {
            // "left right" (older files) or ["left", "right"].
            let pair: [String]
            if let line = entry as? String {
                pair = line.split(separator: " ", omittingEmptySubsequences: false).map(String.init)
            } else {
                pair = entry as? [String] ?? []
            }
            guard pair.count == 2 else { throw .malformed(path: path, detail: "merge \(rank) (\(entry)) is not a pair of tokens") }
            guard let left = vocabulary[pair[0]], let right = vocabulary[pair[1]] else {
                throw .malformed(path: path, detail: "merge \(rank) (\(pair[0]) \(pair[1])) uses a token that is not in the vocabulary")
            }
            guard let merged = vocabulary[pair[0] + pair[1]] else {
                throw .malformed(path: path, detail: "merge \(rank) makes '\(pair[0] + pair[1])', which is not in the vocabulary")
            }
            let key = UInt64(left) << 32 | UInt64(right)
            if merges[key] == nil { merges[key] = (Int32(rank), Int32(merged)) }
        }
        self.merges = merges

        if let unknown = json["unk_token"] as? String {
            guard let id = vocabulary[unknown] else { throw .malformed(path: path, detail: "unk_token '\(unknown)' is not in the vocabulary") }
            unknownID = id
        } else {
            unknownID = nil
        }
        fuseUnknown = json["fuse_unk"] as? Bool ?? false
        ignoreMerges = json["ignore_merges"] as? Bool ?? false
        byteFallback = json["byte_fallback"] as? Bool ?? false
    }

    /// The token ids of one pre-tokenized word.
    ///
    /// - Throws: `TokenizerError.unencodable` for a character with no vocabulary entry, no byte fallback and
    ///   no unknown token (`tokenizers` would drop it silently).
    func tokenize(_ word: String) throws(TokenizerError) -> [Int] {
        if let cached = cache.withLock({ $0[word] }) { return cached }
        let ids = try merge(word)
        cache.withLock { cache in
            if cache.count >= Self.cacheLimit { cache.removeAll(keepingCapacity: true) }
            cache[word] = ids
        }
        return ids
    }

    private func merge(_ word: String) throws(TokenizerError) -> [Int] {
        if ignoreMerges, let id = vocabulary[word] { return [id] }
        var symbols: [Int32] = []
        var previousWasUnknown = false
        for scalar in word.unicodeScalars {
            if let id = vocabulary[String(scalar)] {
                symbols.append(Int32(id))
                previousWasUnknown = false
            } else if byteFallback, let ids = fallbackIDs(scalar) {
                symbols += ids
                previousWasUnknown = false
            } else if let unknownID {
                if !(fuseUnknown && previousWasUnknown) { symbols.append(Int32(unknownID)) }
                previousWasUnknown = true
            } else {
                throw .unencodable(symbol: String(scalar), text: word)
            }
        }
        while symbols.count > 1 {
            var best = -1
            var bestRank = Int32.max
            var bestMerged: Int32 = 0
            for index in 0..<(symbols.count - 1) {
                let key = UInt64(UInt32(symbols[index])) << 32 | UInt64(UInt32(symbols[index + 1]))
                if let merge = merges[key], merge.rank < bestRank {
                    best = index
                    bestRank = merge.rank
                    bestMerged = merge.merged
                }
            }
            guard best >= 0 else { break }
            symbols[best] = bestMerged
            symbols.remove(at: best + 1)
        }
        return symbols.map { Int($0) }
    }

    /// `<0xXX>` tokens for each UTF-8 byte of `scalar`, or nil when the vocabulary lacks one of them.
    private func fallbackIDs(_ scalar: Unicode.Scalar) -> [Int32]? {
        var ids: [Int32] = []
        for byte in String(scalar).utf8 {
            guard let id = vocabulary[String(format: "<0x%02X>", byte)] else { return nil }
            ids.append(Int32(id))
        }
        return ids
    }
}
