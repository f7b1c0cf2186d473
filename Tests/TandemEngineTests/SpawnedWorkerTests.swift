import Foundation
import TandemComm
import TandemEngine
import TandemModel
import TandemTensor
import TandemTestSupport
import XCTest

/// An engine that spawns its own workers (`tandem worker` processes beside the test bundle): the tokens of one
/// rank, every worker gone after shutdown, a worker program that ends at once or a rank that cannot load named
/// promptly, and a dead engine refusing work.
final class SpawnedWorkerTests: XCTestCase {
    private let greedy = SamplingParams(temperature: 0, maxTokens: 10, ignoreEOS: true)
    private let prompts = [[1, 2, 3, 4, 5], Array(7...40), [9]]

    private func children() -> [pid_t] { childProcesses() }

    func testSpawnedWorkersGiveTheTokensOfOneRankAndLeaveWithShutdown() throws {
        let directory = try EngineFixtures.tinyModel(self)
        let config = EngineConfig(model: directory, threads: 1, cache: CacheConfig(blockSize: 4, blockCount: 64))
        let single = try LLM(config: config, tensorParallelSize: 1).generate(promptTokenIDs: prompts, greedy).map(\.tokenIDs)
        let before = Set(children())
        let llm = try LLM(config: config, tensorParallelSize: 2)
        let workers = try XCTUnwrap(llm.spawnedRanks).childPIDs
        XCTAssertEqual(workers.count, 1)
        XCTAssertEqual(Set(children()).subtracting(before), Set(workers))
        // Two calls: the workers stay in their loop between them.
        XCTAssertEqual(try llm.generate(promptTokenIDs: prompts, greedy).map(\.tokenIDs), single)
        XCTAssertEqual(try llm.generate(promptTokenIDs: prompts.reversed(), greedy).map(\.tokenIDs), single.reversed())
        llm.shutdown()
        XCTAssertEqual(Set(children()).intersection(workers), [], "the workers exited and were reaped")
        XCTAssertEqual(llm.spawnedRanks?.firstEnded?.ending, .exited(code: 0))
        XCTAssertThrowsError(try llm.generate(promptTokenIDs: prompts, greedy)) { error in
            guard case EngineError.engineDead = error else { return XCTFail("\(error)") }
        }
    }

    func testAWorkerProgramThatEndsAtOnceIsNamedPromptly() throws {
        let directory = try EngineFixtures.tinyModel(self)
        let start = Date()
        XCTAssertThrowsError(
            try LLM(config: EngineConfig(model: directory), tensorParallelSize: 2, workerProgram: WorkerProgram(path: "/bin/false", arguments: []))
        ) { error in
            XCTAssertEqual(error as? LaunchError, .rankEndedEarly(rank: 1, ending: .exited(code: 1)), "\(error)")
        }
        XCTAssertLessThan(Date().timeIntervalSince(start), 5, "not the 300 s rendezvous timeout")
    }

    /// Every rank reports whether it loaded before any waits on the others: rank 0 names the rank that could not.
    func testARankThatCannotLoadIsNamedByTheOthers() throws {
        let directory = try EngineFixtures.tinyModel(self)
        let results = try ThreadLauncher.run(worldSize: 2) { group in
            let model = group.rank == 1 ? directory + "-missing" : directory
            _ = try LLM(config: EngineConfig(model: model, threads: 1), group: TensorParallelGroup(group))
        }
        XCTAssertThrowsError(try results[0].get()) { error in
            guard case let EngineError.rankFailed(rank, message) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(rank, 1)
            XCTAssertTrue(message.contains("-missing"), message)
        }
        XCTAssertThrowsError(try results[1].get()) { error in
            XCTAssertTrue("\(error)".contains("-missing"), "rank 1 throws its own error: \(error)")
        }
    }
}

/// The async engine over spawned workers: streams give the offline tokens; `kill -9` of the worker ends every
/// open stream within 2 s with an error naming rank 1 and its signal, the engine says it is dead, and shutdown
/// returns with no child left.
final class SpawnedEngineTests: XCTestCase {
    func testStreamsMatchOfflineAndAKilledWorkerEndsThemNamingIt() async throws {
        let directory = try EngineFixtures.tinyModel(self)
        let config = EngineConfig(model: directory, threads: 1, cache: CacheConfig(blockSize: 4, blockCount: 256))
        let params = SamplingParams(temperature: 0, maxTokens: 8, ignoreEOS: true)
        let prompts = [[1, 2, 3], Array(5...30), [42]]
        let offline = try LLM(config: config, tensorParallelSize: 1).generate(promptTokenIDs: prompts, params).map(\.tokenIDs)
        let engine = try LLMEngine(config: config, tensorParallelSize: 2)
        defer { engine.shutdown() }
        XCTAssertNotNil(engine.tokenizer)
        for (index, prompt) in prompts.enumerated() {
            var tokens: [Int] = []
            for try await output in try engine.add(id: "r\(index)", promptTokenIDs: prompt, params: params) { tokens += output.newTokenIDs }
            XCTAssertEqual(tokens, offline[index], "request \(index)")
        }

        // Four long requests in flight, then the worker dies.
        let long = SamplingParams(temperature: 0, maxTokens: 400, ignoreEOS: true)
        let streams = try (0..<4).map { try engine.add(id: "long\($0)", promptTokenIDs: [1, 2, 3 + $0], params: long) }
        var started = streams[0].makeAsyncIterator()
        _ = try await started.next()  // running
        let worker = try XCTUnwrap(childProcesses().last)
        kill(worker, SIGKILL)
        let killed = Date()
        for stream in streams {
            do {
                for try await _ in stream {}
                XCTFail("a stream ended without an error after its worker died")
            } catch {
                XCTAssertTrue("\(error)".contains("rank 1") && "\(error)".contains("signal 9"), "\(error)")
            }
        }
        XCTAssertLessThan(Date().timeIntervalSince(killed), 2)
        XCTAssertNotNil(engine.stoppedReason)
        XCTAssertThrowsError(try engine.add(id: "after", promptTokenIDs: [1], params: params))
        engine.shutdown()
        XCTAssertFalse(childProcesses().contains(worker))
    }
}

