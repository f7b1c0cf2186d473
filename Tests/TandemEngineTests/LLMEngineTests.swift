import Foundation
import TandemComm
import TandemEngine
import TandemModel
import TandemTokenizer
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

/// A worker that leaves — in the middle of a run (its group shut down between two plans, as a crash would leave
/// it) or while the engine is idle — ends every open stream with an error naming it within 2 s; the engine
/// reports itself dead and shuts down cleanly.
final class EngineFailureTests: XCTestCase {
    /// Two ranks as threads over the tiny model: rank 1 runs `worker` with its runner, the plan queue and its
    /// group (and records when it leaves in `leftAt`); rank 0 runs `driver` with an engine over its core.
    private func onTwoRanks(
        worker: @escaping @Sendable (ModelRunner, BroadcastQueue, ProcessGroup) throws -> Void,
        driver: @escaping @Sendable (LLMEngine) throws -> String
    ) throws -> String {
        let directory = try EngineFixtures.tinyModel(self)
        Matmul.setBLASThreads(1)
        let results = try ThreadLauncher.run(worldSize: 2) { world -> String? in
            let model = try LlamaModel(model: directory, group: TensorParallelGroup(world))
            let runner = try ModelRunner(model: model, cacheConfig: CacheConfig(blockSize: 4, blockCount: 300), maxNumSeqs: 8, localRanks: 2)
            let plans = try BroadcastQueue(world: world, writer: 0, name: "plans")
            defer { plans.shutdown() }
            guard world.rank == 0 else {
                try worker(runner, plans, world)
                return nil
            }
            let engine = LLMEngine(
                core: EngineCore(
                    runner: runner, tokenizer: try BytePairTokenizer(directory: directory), eosTokenIDs: [], scheduler: SchedulerConfig(),
                    prefixCaching: true, plans: plans))
            return try driver(engine)
        }
        return try results[0].get()!
    }

    func testAWorkerLostMidRunEndsEveryStreamWithItsRank() throws {
        let leftAt = Box()
        let message = try onTwoRanks(
            worker: { runner, plans, world in
                for _ in 0..<6 { if case let .step(batch) = try StepPlan(decoding: plans.dequeue()) { _ = try runner.execute(batch) } }
                leftAt.set(Date())
                world.shutdown()
            },
            driver: { engine in
                let params = SamplingParams(temperature: 0, maxTokens: 200, ignoreEOS: true)
                let streams = try (0..<3).map { try engine.add(id: "s\($0)", promptTokenIDs: [1, 2, 3 + $0], params: params) }
                let ended = DispatchSemaphore(value: 0)
                let box = Box()
                Task {
                    var messages: [String] = []
                    for stream in streams {
                        do { for try await _ in stream {} } catch { messages.append("\(error)") }
                    }
                    box.set(Date(), messages)
                    ended.signal()
                }
                XCTAssertEqual(ended.wait(timeout: .now() + 30), .success, "the streams end")
                let messages = box.messages
                XCTAssertLessThan(box.date!.timeIntervalSince(leftAt.date!), 2, "streams end within 2 s of the worker leaving")
                XCTAssertEqual(messages.count, 3, "every stream ends with an error")
                for message in messages { XCTAssertTrue(message.contains("rank 1"), message) }
                XCTAssertNotNil(engine.stoppedReason)
                engine.shutdown()
                XCTAssertThrowsError(try engine.add(id: "late", promptTokenIDs: [1], params: params))
                return messages.first ?? ""
            })
        print(message)
    }

    func testAWorkerLostWhileIdleIsNoticedWithoutARequest() throws {
        let leftAt = Box()
        let reason = try onTwoRanks(
            worker: { _, _, world in
                usleep(300_000)
                leftAt.set(Date())
                world.shutdown()
            },
            driver: { engine in
                let deadline = Date(timeIntervalSinceNow: 10)
                while engine.stoppedReason == nil && Date() < deadline { usleep(10_000) }
                let reason = try XCTUnwrap(engine.stoppedReason, "the idle engine notices the lost rank")
                XCTAssertLessThan(Date().timeIntervalSince(try XCTUnwrap(leftAt.date)), 2)
                XCTAssertTrue(reason.contains("rank 1"), reason)
                XCTAssertThrowsError(try engine.add(id: "late", promptTokenIDs: [1], params: SamplingParams())) { error in
                    XCTAssertEqual(error as? EngineError, .engineDead(reason))
                }
                engine.shutdown()
                return reason
            })
        print(reason)
    }
}

private final class Box: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: (Date?, [String]) = (nil, [])
    func set(_ date: Date, _ messages: [String] = []) { lock.withLock { stored = (date, messages) } }
    var date: Date? { lock.withLock { stored.0 } }
    var messages: [String] { lock.withLock { stored.1 } }
}
