import Foundation
import Synchronization
import TandemTestSupport
import XCTest

/// `tandem serve` when a rank dies (kill -9): the requests it was running end with an error, /health answers
/// 503, the ranks are started again, the requests that had not started run on them, and /health is 200 again;
/// when the ranks cannot be started again, the server backs off and in the end exits with the cause.
final class ServeRecoveryTests: XCTestCase {
    private func json(_ text: String) throws -> [String: Any] {
        try XCTUnwrap(JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any], text)
    }

    /// Tandem's segments in /dev/shm (named `tdm…`).
    private func sharedMemorySegments() -> Set<String> {
        Set(((try? FileManager.default.contentsOfDirectory(atPath: "/dev/shm")) ?? []).filter { $0.hasPrefix("tdm") })
    }

    /// Polls /health from now until it answers `status` (true) or `seconds` pass (false).
    private func waitForHealth(_ server: ServeProcess, _ status: Int, seconds: Double) async throws -> Bool {
        let deadline = Date(timeIntervalSinceNow: seconds)
        while Date() < deadline {
            if try await server.request("/health", key: nil).0 == status { return true }
            try await Task.sleep(nanoseconds: 10_000_000)
        }
        return false
    }

    private func completion(_ model: String, maxTokens: Int, stream: Bool) -> String {
        #"{"model": "\#(model)", "prompt": "the model", "max_tokens": \#(maxTokens), "ignore_eos": true, "temperature": 0, "stream": \#(stream)}"#
    }

    /// 16 streams with room for 4 at a time; rank 1 is killed while the first ones run. Every client's reply
    /// ends: those running get an error event naming the rank, the waiting ones complete on the new ranks with
    /// the text the model gives before the kill. /health is 503 within 2 s, then 200; nothing is left in
    /// /dev/shm after SIGTERM.
    func testAKilledRankIsStartedAgainWhileStreamsRun() async throws {
        try await checkKilledRankIsStartedAgain(layout: ["--tp", "2"], replicas: 1)
    }

    /// The same with two data-parallel replicas, rank 1 being the second replica's driver: the whole engine
    /// fails and restarts (both replicas), the streams running on either end with the error, the waiting ones
    /// complete.
    func testAKilledDataParallelReplicaIsStartedAgainWhileStreamsRun() async throws {
        try await checkKilledRankIsStartedAgain(layout: ["--dp", "2"], replicas: 2)
    }

    private func checkKilledRankIsStartedAgain(layout: [String], replicas: Int) async throws {
        // Long streams, so that some still run when rank 1 dies: the tiny model decodes ~40,000 tokens/s here, and
        // 16 streams of 480 tokens could all end before the kill took effect (once did, at --dp 2).
        let directory = try ServerFixtures.tinyModel(self, maxPositions: 4096)
        let model = directory.lastPathComponent
        let segments = sharedMemorySegments()
        let server = try ServeProcess(model: directory.path, arguments: layout + ["--threads", "1", "--max-num-seqs", "4"])
        defer { if server.process.isRunning { server.process.terminate() } }
        let worker = try XCTUnwrap(childProcesses(of: server.process.processIdentifier).first)
        let (status, plain) = try await server.request("/v1/completions", body: completion(model, maxTokens: 2000, stream: false), key: nil)
        XCTAssertEqual(status, 200, plain)
        let expected = try XCTUnwrap((try json(plain)["choices"] as? [[String: Any]])?.first?["text"] as? String)

        let clients = 16
        let replies = Mutex<[Int: [String]]>([:])
        let finished = DispatchGroup()
        let running = DispatchSemaphore(value: 0)
        let body = completion(model, maxTokens: 2000, stream: true)
        for client in 0..<clients {
            finished.enter()
            Thread.detachNewThread {
                if let events = server.stream("/v1/completions", body: body, onFirstEvent: { running.signal() }) {
                    replies.withLock { $0[client] = events }
                }
                finished.leave()
            }
        }
        XCTAssertEqual(running.wait(timeout: .now() + 60), .success, "a stream started")
        kill(worker, SIGKILL)
        let killed = Date()
        let unhealthy = try await waitForHealth(server, 503, seconds: 5)
        XCTAssertTrue(unhealthy && Date().timeIntervalSince(killed) < 2, "/health answered 503 within 2 s of the kill")
        XCTAssertEqual(finished.wait(timeout: .now() + 120), .success, "every client's reply ended")
        let healthy = try await waitForHealth(server, 200, seconds: 60)
        XCTAssertTrue(healthy, "/health is 200 again after the restart")

        var failed = 0
        var completed = 0
        for (client, events) in replies.withLock({ $0 }) {
            XCTAssertEqual(events.last, "data: [DONE]", "client \(client)")
            let objects = try events.dropLast().map { try json(String($0.dropFirst("data: ".count))) }
            if let error = objects.compactMap({ $0["error"] as? [String: Any] }).first {
                failed += 1
                XCTAssertTrue((error["message"] as? String)?.contains("rank 1 failed") == true, "\(error)")
                XCTAssertEqual(error["code"] as? Int, 503)
            } else {
                completed += 1
                let choices = objects.compactMap { ($0["choices"] as? [[String: Any]])?.first }
                XCTAssertEqual(choices.compactMap { $0["text"] as? String }.joined(), expected, "client \(client) completed on the new ranks")
                XCTAssertEqual(choices.last?["finish_reason"] as? String, "length")
            }
        }
        XCTAssertEqual(failed + completed, clients, "every client got a whole reply")
        XCTAssertTrue((1...(4 * replicas)).contains(failed), "the streams running at the kill (at most --max-num-seqs per replica) end with an error: \(failed)")
        XCTAssertGreaterThanOrEqual(completed, clients - 4 * replicas, "the waiting streams are kept and complete")
        let workers = childProcesses(of: server.process.processIdentifier)
        XCTAssertEqual(workers.count, 1)
        XCTAssertNotEqual(workers.first, worker, "rank 1 runs in a new process")
        XCTAssertTrue(server.log.contains("kept"), server.log)

        kill(server.process.processIdentifier, SIGTERM)
        XCTAssertTrue(server.waitForExit(seconds: 30))
        XCTAssertEqual(server.process.terminationStatus, 0)
        XCTAssertEqual(sharedMemorySegments().subtracting(segments), [], "nothing of the server is left in /dev/shm")
    }

    /// The checkpoint is moved away, then rank 1 killed: the first restart fails, /health stays 503, and a
    /// request sent meanwhile waits; once the checkpoint is back the next restart (after its back-off) brings
    /// the ranks up and the request completes with the same text as before.
    func testRestartsBackOffAndWaitingRequestsRunAfterThem() async throws {
        let directory = try ServerFixtures.tinyModel(self)
        let model = directory.lastPathComponent
        let server = try ServeProcess(model: directory.path, arguments: ["--tp", "2", "--threads", "1"])
        defer { if server.process.isRunning { server.process.terminate() } }
        let worker = try XCTUnwrap(childProcesses(of: server.process.processIdentifier).first)
        let (_, plain) = try await server.request("/v1/completions", body: completion(model, maxTokens: 8, stream: false), key: nil)
        let expected = try XCTUnwrap((try json(plain)["choices"] as? [[String: Any]])?.first?["text"] as? String)

        let moved = URL(fileURLWithPath: directory.path + "-moved")
        try FileManager.default.moveItem(at: directory, to: moved)
        addTeardownBlock { try? FileManager.default.removeItem(at: moved) }
        kill(worker, SIGKILL)
        let killed = Date()
        let unhealthy = try await waitForHealth(server, 503, seconds: 5)
        XCTAssertTrue(unhealthy && Date().timeIntervalSince(killed) < 2, "/health answered 503 within 2 s of the kill")
        XCTAssertTrue(server.waitForLog("restart 1 failed", seconds: 10), server.log)
        XCTAssertTrue(server.log.contains(directory.path), "the failed restart names what it could not read: \(server.log)")

        let request = completion(model, maxTokens: 8, stream: false)
        let waiting = Task { try await server.request("/v1/completions", body: request, key: nil) }
        try await Task.sleep(nanoseconds: 200_000_000)
        let (during, _) = try await server.request("/health", key: nil)
        XCTAssertEqual(during, 503, "still restarting")
        try FileManager.default.moveItem(at: moved, to: directory)
        let (status, body) = try await waiting.value
        XCTAssertEqual(status, 200, body)
        XCTAssertEqual((try json(body)["choices"] as? [[String: Any]])?.first?["text"] as? String, expected)
        let (after, _) = try await server.request("/health", key: nil)
        XCTAssertEqual(after, 200)
        XCTAssertTrue(server.log.contains("the ranks are up again (restart 2"), server.log)
    }

    /// With the checkpoint gone for good, restarts back off and give up after --max-restarts: the server exits
    /// non-zero with the cause, the request that waited gets a 503, and no process or segment is left.
    func testServeExitsWhenRestartsGiveUp() async throws {
        let directory = try ServerFixtures.tinyModel(self)
        let model = directory.lastPathComponent
        let segments = sharedMemorySegments()
        let server = try ServeProcess(model: directory.path, arguments: ["--tp", "2", "--threads", "1", "--max-restarts", "2"])
        defer { if server.process.isRunning { server.process.terminate() } }
        let worker = try XCTUnwrap(childProcesses(of: server.process.processIdentifier).first)
        let moved = URL(fileURLWithPath: directory.path + "-moved")
        try FileManager.default.moveItem(at: directory, to: moved)
        addTeardownBlock { try? FileManager.default.removeItem(at: moved) }
        kill(worker, SIGKILL)
        XCTAssertTrue(server.waitForLog("restart 1 failed", seconds: 10), server.log)
        let (status, body, headers) = try await server.requestWithHeaders("/v1/completions", body: completion(model, maxTokens: 8, stream: false), key: nil)
        XCTAssertEqual(status, 503, body)
        XCTAssertEqual(headers["Retry-After"] as? String, "1")
        XCTAssertTrue(body.contains("gave up after 2 restarts"), body)

        XCTAssertTrue(server.waitForExit(seconds: 30), "the server exits once its restarts gave up")
        XCTAssertNotEqual(server.process.terminationStatus, 0)
        XCTAssertTrue(server.log.contains("the engine stopped for good: gave up after 2 restarts in a row; the last: restart 2 failed"), server.log)
        XCTAssertTrue(server.log.contains(directory.path), server.log)
        XCTAssertEqual(sharedMemorySegments().subtracting(segments), [], "nothing of the server is left in /dev/shm")
    }
}
