import Foundation
import TandemModel
import TandemTestSupport
import TandemTokenizer
import XCTest

/// The tokenizer against the Hugging Face `tokenizers` package: tokenizer.json files in the GPT-2, Llama 3 and
/// Qwen2 layouts, trained by that package (tools/reference/tokenizer_reference.py), encode and decode the
/// corpus in tools/reference/tokenizer_corpus.json (unicode, whitespace runs, code, special tokens) to the
/// same ids and text.
final class TokenizerTests: XCTestCase {
    struct Expected: Decodable {
        let text: String
        let ids: [Int]
        let ids_plain: [Int]
        let decoded: String
        let decoded_with_specials: String
    }

    /// Trains a tokenizer of `style` with the reference package, then compares every corpus entry.
    private func checkAgainstReference(style: String) throws {
        let directory = try Reference.temporaryDirectory(self)
        _ = try Reference.python("tokenizer_reference.py", ["train", "--style", style, "--out", directory.path])
        try Self.checkAgainstReference(directory: directory.path)
    }

    /// Compares `BytePairTokenizer` with the reference package on the tokenizer.json in `directory` (or, given,
    /// `tokenizer`, which must tokenize as that file does) over the corpus entries `including` keeps.
    static func checkAgainstReference(
        directory: String, tokenizer given: BytePairTokenizer? = nil, including: (String) -> Bool = { _ in true }
    ) throws {
        let tokenizerPath = (directory as NSString).appendingPathComponent("tokenizer.json")
        let expected = try JSONDecoder().decode(
            [Expected].self, from: Reference.python("tokenizer_reference.py", ["encode", "--tokenizer", tokenizerPath])
        ).filter { including($0.text) }
        XCTAssertGreaterThan(expected.count, 30)
        let tokenizer = try given ?? BytePairTokenizer(directory: directory)
        for entry in expected {
            let label = entry.text.debugDescription.prefix(80)
            XCTAssertEqual(try tokenizer.encode(entry.text, addSpecialTokens: true), entry.ids, "encode \(label)")
            XCTAssertEqual(try tokenizer.encode(entry.text, addSpecialTokens: false), entry.ids_plain, "encode without specials \(label)")
            XCTAssertEqual(tokenizer.decode(entry.ids, skipSpecialTokens: true), entry.decoded, "decode \(label)")
            XCTAssertEqual(tokenizer.decode(entry.ids, skipSpecialTokens: false), entry.decoded_with_specials, "decode with specials \(label)")
        }
    }

    /// A GGUF file's tokenizer (its `tokenizer.ggml.*` keys, written by llama.cpp's library from the
    /// tokenizer.json as convert_hf_to_gguf.py writes them) tokenizes as the tokenizer.json did. GGUF keeps no
    /// normalizer, no lstrip/rstrip of added tokens and no add_prefix_space (llama.cpp applies none of them), so
    /// the texts those change are left out: Qwen2's texts that NFC changes, Llama 3's with the chat markers
    /// that strip whitespace; and the GPT-2 layout (a prefix space) is not compared.
    func testGGUFTokenizerMatchesTokenizersPackage() throws {
        for (style, pre) in [("llama3", "llama-bpe"), ("qwen2", "qwen2")] {
            let directory = try Reference.temporaryDirectory(self)
            _ = try Reference.python("tokenizer_reference.py", ["train", "--style", style, "--out", directory.path])
            let file = directory.appendingPathComponent("tokenizer.gguf").path
            _ = try Reference.python(
                "convert_to_gguf.py", ["--tokenizer", directory.appendingPathComponent("tokenizer.json").path, "--out", file, "--pre", pre])
            try Self.checkAgainstReference(directory: directory.path, tokenizer: try GGUFFile(path: file).tokenizer()) { text in
                style == "llama3" ? !text.contains("<|im_") : text.precomposedStringWithCanonicalMapping.unicodeScalars.elementsEqual(text.unicodeScalars)
            }
        }
    }

    func testGPT2StyleMatchesTokenizersPackage() throws { try checkAgainstReference(style: "gpt2") }
    func testLlama3StyleMatchesTokenizersPackage() throws { try checkAgainstReference(style: "llama3") }
    func testQwen2StyleMatchesTokenizersPackage() throws { try checkAgainstReference(style: "qwen2") }
    /// NFKC + lowercase, digits split, and an added token matched in normalized text but decoded as written.
    func testNormalizedAddedTokenMatchesTokenizersPackage() throws { try checkAgainstReference(style: "lowercase") }

    /// Streaming a token at a time emits only whole characters, and all of it together is `decode`.
    func testIncrementalDetokenizationEmitsWholeCharactersAndMatchesDecode() throws {
        let directory = try Reference.temporaryDirectory(self)
        _ = try Reference.python("tokenizer_reference.py", ["train", "--style", "llama3", "--out", directory.path])
        let tokenizer = try BytePairTokenizer(directory: directory.path)
        let corpus = try JSONDecoder().decode(
            [String].self, from: Data(contentsOf: ReferenceScript.directory.appendingPathComponent("tokenizer_corpus.json")))
        var multiByteTokensSeen = 0
        for text in corpus {
            let ids = try tokenizer.encode(text, addSpecialTokens: true)
            var stream = IncrementalDetokenizer(tokenizer: tokenizer)
            var streamed = ""
            for id in ids {
                let piece = stream.append(id)
                XCTAssertFalse(piece.unicodeScalars.contains("\u{FFFD}"), "broken UTF-8 emitted for \(text.debugDescription)")
                if String(decoding: tokenizer.bytes(of: id), as: UTF8.self).contains("\u{FFFD}") { multiByteTokensSeen += 1 }
                streamed += piece
            }
            streamed += stream.finish()
            XCTAssertEqual(streamed, tokenizer.decode(ids, skipSpecialTokens: true), text.debugDescription)
        }
        // The corpus must exercise tokens that end inside a character, or the test proves nothing.
        XCTAssertGreaterThan(multiByteTokensSeen, 10)
    }

    /// Bytes that never complete a character become U+FFFD at the end, as `decode` makes them.
    func testIncrementalDetokenizationFlushesAnIncompleteCharacter() throws {
        let directory = try Reference.temporaryDirectory(self)
        _ = try Reference.python("tokenizer_reference.py", ["train", "--style", "gpt2", "--out", directory.path])
        let tokenizer = try BytePairTokenizer(directory: directory.path)
        // The byte-level tokens for 0xE6 and 0x97 (the first two bytes of 日), with nothing after.
        let ids = [try XCTUnwrap(tokenizer.id(of: "æ")), try XCTUnwrap(tokenizer.id(of: "Ĺ"))]
        XCTAssertEqual(tokenizer.bytes(of: ids[0]) + tokenizer.bytes(of: ids[1]), [0xE6, 0x97])
        var stream = IncrementalDetokenizer(tokenizer: tokenizer)
        XCTAssertEqual(stream.append(ids[0]) + stream.append(ids[1]), "")
        XCTAssertEqual(stream.finish(), tokenizer.decode(ids, skipSpecialTokens: true))
        XCTAssertEqual(tokenizer.decode(ids, skipSpecialTokens: true), "\u{FFFD}")
    }

    // MARK: - Bad inputs

    private func write(_ object: [String: Any], to directory: URL) throws {
        try JSONSerialization.data(withJSONObject: object).write(to: directory.appendingPathComponent("tokenizer.json"))
    }

    private func minimalTokenizer(vocabulary: [String: Any], merges: [String] = []) -> [String: Any] {
        [
            "model": ["type": "BPE", "vocab": vocabulary, "merges": merges],
            "pre_tokenizer": ["type": "ByteLevel", "add_prefix_space": false, "use_regex": true],
            "decoder": ["type": "ByteLevel"],
        ]
    }

    func testMissingTokenizerFileIsNamed() throws {
        let directory = try Reference.temporaryDirectory(self)
        XCTAssertThrowsError(try BytePairTokenizer(directory: directory.path)) { error in
            guard case let TokenizerError.missingFile(path, _) = error else { return XCTFail("\(error)") }
            XCTAssertTrue(path.hasSuffix("tokenizer.json"))
        }
    }

    func testTokenizerThatIsNotJSONIsMalformed() throws {
        let directory = try Reference.temporaryDirectory(self)
        try Data("{\"model\": ".utf8).write(to: directory.appendingPathComponent("tokenizer.json"))
        XCTAssertThrowsError(try BytePairTokenizer(directory: directory.path)) { error in
            guard case TokenizerError.malformed = error else { return XCTFail("\(error)") }
        }
    }

    func testWordPieceModelIsUnsupported() throws {
        let directory = try Reference.temporaryDirectory(self)
        var object = minimalTokenizer(vocabulary: ["a": 0])
        object["model"] = ["type": "WordPiece", "vocab": ["a": 0]]
        try write(object, to: directory)
        XCTAssertThrowsError(try BytePairTokenizer(directory: directory.path)) { error in
            guard case let TokenizerError.unsupported(_, detail) = error else { return XCTFail("\(error)") }
            XCTAssertTrue(detail.contains("WordPiece"), detail)
        }
    }

    func testMetaspaceDecoderIsUnsupported() throws {
        let directory = try Reference.temporaryDirectory(self)
        var object = minimalTokenizer(vocabulary: ["a": 0])
        object["decoder"] = ["type": "Metaspace"]
        try write(object, to: directory)
        XCTAssertThrowsError(try BytePairTokenizer(directory: directory.path)) { error in
            guard case let TokenizerError.unsupported(_, detail) = error else { return XCTFail("\(error)") }
            XCTAssertTrue(detail.contains("Metaspace"), detail)
        }
    }

    func testMergeOfUnknownTokenIsMalformed() throws {
        let directory = try Reference.temporaryDirectory(self)
        try write(minimalTokenizer(vocabulary: ["a": 0, "b": 1, "ab": 2], merges: ["a c"]), to: directory)
        XCTAssertThrowsError(try BytePairTokenizer(directory: directory.path)) { error in
            guard case let TokenizerError.malformed(_, detail) = error else { return XCTFail("\(error)") }
            XCTAssertTrue(detail.contains("merge 0"), detail)
        }
    }

    func testCharacterOutsideVocabularyIsAnErrorNotDropped() throws {
        let directory = try Reference.temporaryDirectory(self)
        try write(minimalTokenizer(vocabulary: ["a": 0, "b": 1, "ab": 2], merges: ["a b"]), to: directory)
        let tokenizer = try BytePairTokenizer(directory: directory.path)
        XCTAssertEqual(try tokenizer.encode("abab", addSpecialTokens: false), [2, 2])
        XCTAssertThrowsError(try tokenizer.encode("abc", addSpecialTokens: false)) { error in
            XCTAssertEqual(error as? TokenizerError, .unencodable(symbol: "c", text: "abc"))
        }
    }

    /// Found by fuzz-tokenizer: a post-processor adding an id no token has (here the bos of a missing
    /// added_tokens) passed, and the id reached the model; an id of 10¹² made a table of that many entries.
    func testIdsOutsideTheVocabularyAreMalformed() throws {
        let directory = try Reference.temporaryDirectory(self)
        var object = minimalTokenizer(vocabulary: ["a": 0, "b": 1])
        object["post_processor"] = [
            "type": "TemplateProcessing", "single": [["SpecialToken": ["id": "<s>", "type_id": 0]], ["Sequence": ["id": "A", "type_id": 0]]],
            "special_tokens": ["<s>": ["id": "<s>", "ids": [7], "tokens": ["<s>"]]],
        ]
        try write(object, to: directory)
        XCTAssertThrowsError(try BytePairTokenizer(directory: directory.path)) { error in
            guard case let TokenizerError.malformed(_, detail) = error else { return XCTFail("\(error)") }
            XCTAssertTrue(detail.contains("post_processor adds id 7"), detail)
        }
        for id in [1_000_000_000_000, -1] as [Any] + [1.5] {
            try write(minimalTokenizer(vocabulary: ["a": 0, "b": id]), to: directory)
            XCTAssertThrowsError(try BytePairTokenizer(directory: directory.path), "id \(id)") { error in
                guard case let TokenizerError.malformed(_, detail) = error else { return XCTFail("\(error)") }
                XCTAssertTrue(detail.contains("model.vocab entry 'b' has no valid id"), detail)
            }
        }
    }
}
