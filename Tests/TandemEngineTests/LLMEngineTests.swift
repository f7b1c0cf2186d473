import Foundation
import TandemEngine
import TandemModel
import TandemTensor
import XCTest

/// The async engine: requests added from many tasks at once stream their tokens, deltas add up to the final
/// text, results equal the offline engine's, abort ends a stream, shutdown ends the rest.
final class LLMEngineTests: XCTestCase {
    private func engine(_ directory: String) throws -> (LLMEngine, LLM) {
        let llm = try LLM(model: directory, group: .single, threads: 1, cache: CacheConfig(blockSize: 4, blockCount: 200))
        let core = EngineCore(
            runner: llm.runner, tokenizer: llm.tokenizer, eosTokenIDs: llm.eosTokenIDs, scheduler: SchedulerConfig(maxNumBatchedTokens: 32, maxNumSeqs: 8),
            prefixCaching: true, plans: nil)
        return (LLMEngine(core: core), llm)
    }

    func testConcurrentRequestsStreamTheOfflineResults() async throws {
        let directory = try EngineFixtures.tinyModel(self)
        let (engine, llm) = try engine(directory)
        defer { engine.shutdown() }
        let prompts = (0..<10).map { Array(1...(3 + $0 * 4)) }
        let params = SamplingParams(temperature: 0, maxTokens: 9, ignoreEOS: true)
        let offline = try LLMEngineTests.offline(directory, prompts, params)
        let results = try await withThrowingTaskGroup(of: (Int, [Int], String, String).self) { group in
            for (index, prompt) in prompts.enumerated() {
                let stream = try engine.add(id: "q\(index)", promptTokenIDs: prompt, params: params)
                group.addTask {
                    var (tokens, text, final) = ([Int](), "", "")
                    for try await output in stream {
                        tokens += output.newTokenIDs
                        text += output.textDelta
                        if let result = output.final { final = result.output.text }
                    }
                    return (index, tokens, text, final)
                }
            }
            return try await group.reduce(into: [:]) { $0[$1.0] = ($1.1, $1.2, $1.3) }
        }
        _ = llm
        for index in prompts.indices {
            XCTAssertEqual(results[index]?.0, offline[index].tokenIDs, "request \(index)")
            XCTAssertEqual(results[index]?.1, results[index]?.2, "the deltas add up to the text")
            XCTAssertEqual(results[index]?.2, offline[index].text)
        }
    }

    private static func offline(_ directory: String, _ prompts: [[Int]], _ params: SamplingParams) throws -> [RequestOutput] {
        try LLM(model: directory, group: .single, threads: 1).generate(promptTokenIDs: prompts, params)
    }

    func testAbortEndsTheStreamAndBadRequestsThrowAtAdd() async throws {
        let directory = try EngineFixtures.tinyModel(self)
        let (engine, _) = try engine(directory)
        defer { engine.shutdown() }
        let stream = try engine.add(id: "long", promptTokenIDs: [1, 2, 3], params: SamplingParams(temperature: 0, maxTokens: 400, ignoreEOS: true))
        XCTAssertThrowsError(try engine.add(id: "long", promptTokenIDs: [1], params: SamplingParams())) { error in
            XCTAssertEqual(error as? EngineError, .duplicateRequest(id: "long"))
        }
        XCTAssertThrowsError(try engine.add(id: "x", promptTokenIDs: [1], params: SamplingParams(maxTokens: 0))) { error in
            XCTAssertEqual(error as? GenerationError, .invalidRequest("max_tokens must be at least 1, got 0"))
        }
        var received = 0
        var reason: FinishReason?
        for try await output in stream {
            received += output.newTokenIDs.count
            if received == 5 { engine.abort("long") }
            reason = output.finishReason ?? reason
        }
        XCTAssertEqual(reason, .abort)
        XCTAssertLessThan(received, 400)
    }

    func testShutdownEndsOpenStreamsWithAnError() async throws {
        let directory = try EngineFixtures.tinyModel(self)
        let (engine, _) = try engine(directory)
        let stream = try engine.add(id: "a", promptTokenIDs: [1, 2], params: SamplingParams(temperature: 0, maxTokens: 400, ignoreEOS: true))
        var iterator = stream.makeAsyncIterator()
        _ = try await iterator.next()
        engine.shutdown()
        do {
            while try await iterator.next() != nil {}
            XCTFail("the stream ends with an error")
        } catch {
            XCTAssertEqual(error as? EngineError, .engineDead("shut down"))
        }
        XCTAssertThrowsError(try engine.add(id: "b", promptTokenIDs: [1], params: SamplingParams())) { error in
            XCTAssertEqual(error as? EngineError, .engineDead("shut down"))
        }
    }
}
