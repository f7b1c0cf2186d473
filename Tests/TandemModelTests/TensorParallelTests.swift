import Foundation
import TandemComm
import TandemEngine
import TandemModel
import TandemTensor
import XCTest

/// The same checkpoint split 1, 2 and 4 ways (ranks on threads, real process groups): logits within 1e-4 of
/// tp 1 at every prefill and decode step, and greedy generation picks the same tokens — including when kv
/// heads are fewer than ranks and are replicated.
final class TensorParallelTests: XCTestCase {
    private static let prompts = ["Hello world, this is Tandem.", "The quick brown fox", "1 2 3"]

    private func check(_ preset: ModelPreset) throws {
        let directory = try ModelFixtures.write(preset, test: self)
        let (prompt, continuation) = (ModelFixtures.stepPrompt, ModelFixtures.stepContinuation)
        let single = try ModelFixtures.oneRankStepLogits(directory)
        let greedy = SamplingParams(temperature: 0, maxTokens: 24, ignoreEOS: true)
        let singleTokens = try ModelFixtures.onRanks(1) { group in
            try LLM(model: directory, group: group).generate(Self.prompts, greedy).map(\.tokenIDs)
        }[0]
        XCTAssertEqual(singleTokens.map(\.count), [24, 24, 24])
        for size in [2, 4] {
            let ranks = try ModelFixtures.onRanks(size) { group in
                try ModelFixtures.stepLogits(LlamaModel(model: directory, group: group), prompt: prompt, continuation: continuation)
            }
            XCTAssertEqual(ranks[0].count, single.count, "rank 0 receives the logits")
            XCTAssertTrue(ranks.dropFirst().allSatisfy(\.isEmpty), "logits are gathered to rank 0 only")
            let error = ModelFixtures.relativeError(ranks[0], single.map { $0.map(Double.init) })
            XCTAssertLessThan(error, 1e-4, "\(preset.name) tp \(size)")
            let tokens = try ModelFixtures.onRanks(size) { group in
                try LLM(model: directory, group: group).generate(Self.prompts, greedy).map(\.tokenIDs)
            }
            for (rank, ids) in tokens.enumerated() { XCTAssertEqual(ids, singleTokens, "\(preset.name) tp \(size) rank \(rank)") }
        }
    }

    func testTinyPresetIsIdenticalAcrossTensorParallelSizes() throws { try check(.tiny) }
    func testSingleKVHeadReplicatedOverRanksIsIdentical() throws { try check(ModelFixtures.tiedQwen2) }

    /// Sampling with a seed gives every rank the same tokens, and the same tokens as one rank.
    func testSeededSamplingAgreesAcrossRanks() throws {
        let directory = try ModelFixtures.write(.tiny, test: self)
        let params = SamplingParams(temperature: 0.8, topP: 0.9, topK: 50, seed: 1234, maxTokens: 20, ignoreEOS: true)
        let single = try ModelFixtures.onRanks(1) { group in try LLM(model: directory, group: group).generate(Self.prompts, params) }[0]
        let split = try ModelFixtures.onRanks(2) { group in try LLM(model: directory, group: group).generate(Self.prompts, params) }
        XCTAssertEqual(split[0], single)
        XCTAssertEqual(split[1], single)
    }

    /// Without a seed each run draws one, and the ranks still agree (rank 0's is broadcast).
    func testUnseededSamplingAgreesAcrossRanks() throws {
        let directory = try ModelFixtures.write(.tiny, test: self)
        let params = SamplingParams(temperature: 1, maxTokens: 12, ignoreEOS: true)
        let split = try ModelFixtures.onRanks(2) { group in try LLM(model: directory, group: group).generate(Self.prompts, params) }
        XCTAssertEqual(split[0], split[1])
    }

    /// Ranks that disagree on the requests are told so before any collective of the model runs.
    func testRanksWithDifferentPromptsAreRefused() throws {
        let directory = try ModelFixtures.write(.tiny, test: self)
        let outcomes = try ThreadLauncher.run(worldSize: 2) { group in
            _ = try LLM(model: directory, group: TensorParallelGroup(group)).generate([group.rank == 0 ? "Hello" : "Goodbye"])
        }
        for outcome in outcomes {
            XCTAssertThrowsError(try outcome.get()) { error in
                guard case let GenerationError.invalidRequest(message) = error else { return XCTFail("\(error)") }
                XCTAssertTrue(message.contains("rank 1"), message)
            }
        }
    }

    /// A size that does not split the heads is refused with the sizes that would work.
    func testSizeThatDoesNotSplitHeadsListsValidSizes() throws {
        let directory = try ModelFixtures.write(.tiny, test: self)
        let outcomes = try ThreadLauncher.run(worldSize: 3) { group in _ = try LlamaModel(model: directory, group: TensorParallelGroup(group)) }
        for outcome in outcomes {
            XCTAssertThrowsError(try outcome.get()) { error in
                guard case let ModelLoadError.unsupported(_, detail) = error else { return XCTFail("\(error)") }
                XCTAssertTrue(detail.contains("tensor parallel size 3"), detail)
                XCTAssertTrue(detail.contains("valid sizes: 1, 2, 4"), detail)
            }
        }
    }
}
