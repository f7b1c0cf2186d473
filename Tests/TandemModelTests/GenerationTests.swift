import Foundation
import TandemEngine
import TandemModel
import XCTest

/// The engine's request semantics on the tiny preset: stop token ids, stop strings, max tokens, batching,
/// seeds, and invalid requests refused with the field named.
final class GenerationTests: XCTestCase {
    private var directory: String!

    override func setUpWithError() throws {
        directory = try ModelFixtures.write(.tiny, test: self)
    }

    private func llm() throws -> LLM { try LLM(model: directory, group: .single) }

    func testMaxTokensEndsWithLength() throws {
        let output = try llm().generate(["Hello"], SamplingParams(temperature: 0, maxTokens: 7, ignoreEOS: true))[0]
        XCTAssertEqual(output.tokenIDs.count, 7)
        XCTAssertEqual(output.finishReason, .length)
        XCTAssertEqual(output.promptTokenIDs.first, 510, "the template puts <|begin_of_text|> first")
    }

    /// NaN weights make every logit NaN: the request ends with an error naming it and the position, instead of
    /// "sampling" token 0 as if it meant something.
    func testNonFiniteLogitsEndTheRequestWithAnError() throws {
        // model.norm.weight (bf16, hidden size 64) overwritten with NaN (0x7FC0) in model.safetensors.
        let url = URL(fileURLWithPath: directory).appendingPathComponent("model.safetensors")
        var file = try Data(contentsOf: url)
        let headerLength = Int(file.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
        let header = try JSONSerialization.jsonObject(with: file.subdata(in: 8..<(8 + headerLength))) as! [String: Any]
        let entry = try XCTUnwrap(header["model.norm.weight"] as? [String: Any])
        XCTAssertEqual(entry["dtype"] as? String, "BF16")
        let offsets = try XCTUnwrap(entry["data_offsets"] as? [Int])
        for byte in stride(from: 8 + headerLength + offsets[0], to: 8 + headerLength + offsets[1], by: 2) {
            file[byte] = 0xC0
            file[byte + 1] = 0x7F
        }
        try file.write(to: url)
        let prompt = try llm().tokenizer.encode("Hello", addSpecialTokens: true)
        XCTAssertThrowsError(try llm().generate(["Hello"], SamplingParams(temperature: 0, maxTokens: 4))) { error in
            XCTAssertEqual(error as? EngineError, .nonFiniteLogits(id: "0", position: prompt.count), "\(error)")
        }
    }

    func testNoPromptsGiveNoOutputs() throws {
        XCTAssertEqual(try llm().generate([String](), SamplingParams()), [])
    }

    func testTokenPromptsMatchTextPrompts() throws {
        let model = try llm()
        let params = SamplingParams(temperature: 0, maxTokens: 6, ignoreEOS: true)
        let text = try model.generate(["Hello world"], params)[0]
        let tokens = try model.generate(promptTokenIDs: [text.promptTokenIDs], params)[0]
        XCTAssertEqual(tokens.tokenIDs, text.tokenIDs)
        XCTAssertEqual(tokens.prompt, "<|begin_of_text|>Hello world")
    }

    func testBatchedPromptsMatchPromptsRunAlone() throws {
        let model = try llm()
        let prompts = ["Hello world", "A much longer prompt with several more words in it", "x"]
        let params = SamplingParams(temperature: 0, maxTokens: 10, ignoreEOS: true)
        let batched = try model.generate(prompts, params)
        for (index, prompt) in prompts.enumerated() {
            XCTAssertEqual(try model.generate([prompt], params)[0], batched[index])
        }
    }

    func testStopTokenIDEndsTheSequenceAndIsKept() throws {
        let model = try llm()
        let free = try model.generate(["Hello"], SamplingParams(temperature: 0, maxTokens: 12, ignoreEOS: true))[0]
        let stopID = free.tokenIDs[4]
        let firstIndex = free.tokenIDs.firstIndex(of: stopID)!
        let stopped = try model.generate(["Hello"], SamplingParams(temperature: 0, maxTokens: 12, stopTokenIDs: [stopID]))[0]
        XCTAssertEqual(stopped.tokenIDs, Array(free.tokenIDs[...firstIndex]))
        XCTAssertEqual(stopped.finishReason, .stop)
    }

    func testStopStringCutsTheTextBeforeIt() throws {
        let model = try llm()
        let params = SamplingParams(temperature: 0, maxTokens: 40, ignoreEOS: true)
        let free = try model.generate(["The quick brown fox"], params)[0]
        // A stop string taken from the middle of the free-running text (a stretch without replacement characters).
        let characters = Array(free.text)
        let start = try XCTUnwrap((characters.count / 3..<characters.count - 2).first { index in
            !characters[index..<(index + 2)].contains("\u{FFFD}")
        })
        let stop = String(characters[start..<(start + 2)])
        let cut = free.text.range(of: stop)!.lowerBound
        var withStop = params
        withStop.stop = [stop]
        let stopped = try model.generate(["The quick brown fox"], withStop)[0]
        XCTAssertEqual(stopped.text, String(free.text[..<cut]))
        XCTAssertEqual(stopped.finishReason, .stop)
        XCTAssertTrue(free.tokenIDs.starts(with: stopped.tokenIDs))
        XCTAssertLessThan(stopped.tokenIDs.count, free.tokenIDs.count)
    }

    /// generation_config.json's eos ids end a sequence (the id is kept, its text is not), unless ignored.
    /// Streamed deltas add up to each output's text, with and without a stop string, and end with the reason.
    func testStreamedDeltasAddUpToTheText() throws {
        let model = try llm()
        let prompts = ["The quick brown fox", "Hello"]
        let free = try model.generate(prompts, SamplingParams(temperature: 0, maxTokens: 30, ignoreEOS: true))
        let stop = String(Array(free[0].text)[10..<12])
        for params in [
            SamplingParams(temperature: 0, maxTokens: 30, ignoreEOS: true),
            SamplingParams(temperature: 0, maxTokens: 30, stop: [stop, "zzzz"], ignoreEOS: true),
        ] {
            var streamed = ["", ""]
            var finished: [FinishReason?] = [nil, nil]
            var deltas = 0
            let outputs = try model.generate(prompts, params) { delta in
                XCTAssertNil(finished[delta.index], "a delta after the last one")
                streamed[delta.index] += delta.text
                finished[delta.index] = delta.finishReason
                deltas += 1
            }
            XCTAssertEqual(streamed, outputs.map(\.text))
            XCTAssertEqual(finished, outputs.map(\.finishReason))
            XCTAssertEqual(deltas, outputs.reduce(0) { $0 + $1.tokenIDs.count })
            XCTAssertEqual(outputs[0].finishReason, params.stop.isEmpty ? .length : .stop)
        }
    }

    func testEndOfSequenceFromGenerationConfigStopsUnlessIgnored() throws {
        let greedy = SamplingParams(temperature: 0, maxTokens: 6)
        let free = try llm().generate(["Hello"], greedy)[0]
        XCTAssertEqual(free.finishReason, .length)
        let third = free.tokenIDs[2]
        let firstIndex = free.tokenIDs.firstIndex(of: third)!
        try JSONSerialization.data(withJSONObject: ["eos_token_id": [third]])
            .write(to: URL(fileURLWithPath: directory).appendingPathComponent("generation_config.json"))
        let model = try llm()
        XCTAssertEqual(model.eosTokenIDs, [511, third])
        let stopped = try model.generate(["Hello"], greedy)[0]
        XCTAssertEqual(stopped.tokenIDs, Array(free.tokenIDs[...firstIndex]))
        XCTAssertEqual(stopped.finishReason, .stop)
        XCTAssertEqual(stopped.text, model.tokenizer.decode(Array(free.tokenIDs[..<firstIndex]), skipSpecialTokens: true))
        var ignoring = greedy
        ignoring.ignoreEOS = true
        XCTAssertEqual(try model.generate(["Hello"], ignoring)[0], free)
    }

    func testSameSeedRepeatsAndAnotherSeedDiffers() throws {
        let model = try llm()
        let params = SamplingParams(temperature: 1, seed: 7, maxTokens: 24, ignoreEOS: true)
        let first = try model.generate(["Hello"], params)[0]
        XCTAssertEqual(try model.generate(["Hello"], params)[0], first)
        var other = params
        other.seed = 8
        XCTAssertNotEqual(try model.generate(["Hello"], other)[0].tokenIDs, first.tokenIDs)
    }

    func testInvalidRequestsNameTheField() throws {
        let model = try llm()
        let cases: [(SamplingParams, String)] = [
            (SamplingParams(maxTokens: 0), "max_tokens"), (SamplingParams(temperature: -1), "temperature"),
            (SamplingParams(topP: 0), "top_p"), (SamplingParams(topK: -2), "top_k"), (SamplingParams(stop: [""]), "stop"),
            (SamplingParams(stopTokenIDs: [-1]), "stop_token_ids"),
            (SamplingParams(stopTokenIDs: [3, 512]), "stop token id 512 of request 0 is outside the vocabulary (0..<512)"),
            (SamplingParams(maxTokens: 512), "max_tokens 512 of request 0 is not below the model's context of 512"),
        ]
        for (params, field) in cases {
            XCTAssertThrowsError(try model.generate(["Hello"], params)) { error in
                guard case let GenerationError.invalidRequest(message) = error else { return XCTFail("\(error)") }
                XCTAssertTrue(message.contains(field), message)
            }
        }
    }

    func testPromptLongerThanTheContextIsRefused() throws {
        let model = try llm()
        let long = String(repeating: "word ", count: 600)
        XCTAssertThrowsError(try model.generate(["short", long], SamplingParams(maxTokens: 4))) { error in
            guard case let EngineError.requestTooLarge(id, message) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(id, "1", "the second prompt is named")
            XCTAssertTrue(message.contains("1802 tokens; the model's context is 512 (max_position_embeddings)"), message)
        }
        // The refused call leaves nothing behind: the next one runs.
        XCTAssertEqual(try model.generate(["short"], SamplingParams(maxTokens: 3, ignoreEOS: true))[0].tokenIDs.count, 3)
    }

    func testGenerationStopsWhenTheContextIsFull() throws {
        let model = try llm()
        let prompt = String(repeating: "ab ", count: 240)
        let promptLength = try model.tokenizer.encode(prompt, addSpecialTokens: true).count
        let output = try model.generate([prompt], SamplingParams(temperature: 0, maxTokens: 511, ignoreEOS: true))[0]
        XCTAssertLessThan(output.tokenIDs.count, 511, "the context, not max_tokens, ended it")
        XCTAssertEqual(output.finishReason, .length)
        XCTAssertEqual(promptLength + output.tokenIDs.count, model.model.config.maxPositions)
    }

    func testTokenOutsideTheVocabularyIsRefused() throws {
        let model = try llm().model
        let batch = ForwardBatch(tokens: [5, 512], sequences: [ScheduledSequence(tokenCount: 2, computedTokens: 0, blockTable: [0], wantsLogits: true)])
        XCTAssertThrowsError(try model.forward(batch, cache: model.makeKVCache(blockCount: 1, blockSize: 4, dtype: .float32))) { error in
            XCTAssertEqual(error as? GenerationError, .tokenOutOfVocabulary(token: 512, vocabularySize: 512))
        }
    }
}
