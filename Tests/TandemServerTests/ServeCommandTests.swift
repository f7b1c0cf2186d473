import Foundation
import Synchronization
import TandemModel
import TandemTestSupport
import XCTest

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// `tandem serve` as users run it: a real process with a spawned second rank (--tp 2), spoken to over HTTP.
/// (A rank that dies: `ServeRecoveryTests`.)
final class ServeCommandTests: XCTestCase {
    private func json(_ text: String) throws -> [String: Any] {
        try XCTUnwrap(JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any], text)
    }

    func testServeAnswersLikeGenerateAndStopsOnSIGTERM() async throws {
        let directory = try ServerFixtures.tinyModel(self, chatTemplate: ServerFixtures.chatML)

        let generated = try BuiltProgram.run(BuiltProgram.tandem, ["generate", "--model", directory.path, "--tp", "2", "--prompt", "the model", "--max-tokens", "8", "--temperature", "0"])
        let line = try XCTUnwrap(generated.lines(containing: "output: ").first)
        let expected = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(("[" + line.components(separatedBy: "output: ")[1].components(separatedBy: "  [")[0] + "]").utf8)) as? [String])[0]

        let server = try ServeProcess(model: directory.path, arguments: ["--tp", "2", "--served-model-name", "tiny", "--api-key", "test-key-of-some-length", "--threads", "1"])
        defer { if server.process.isRunning { server.process.terminate() } }
        let workers = childProcesses(of: server.process.processIdentifier)
        XCTAssertEqual(workers.count, 1, "rank 1 runs in its own process")

        let (healthStatus, _) = try await server.request("/health", key: nil)
        XCTAssertEqual(healthStatus, 200)
        let (status, body) = try await server.request("/v1/completions", body: #"{"model": "tiny", "prompt": "the model", "max_tokens": 8, "temperature": 0}"#)
        XCTAssertEqual(status, 200, body)
        XCTAssertEqual((try json(body)["choices"] as? [[String: Any]])?.first?["text"] as? String, expected, "greedy output through the server equals tandem generate")

        let chat = #"{"model": "tiny", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 6, "temperature": 0"#
        let (chatStatus, chatBody) = try await server.request("/v1/chat/completions", body: chat + "}")
        XCTAssertEqual(chatStatus, 200, chatBody)
        let answer = try XCTUnwrap(((try json(chatBody)["choices"] as? [[String: Any]])?.first?["message"] as? [String: Any])?["content"] as? String)
        let (streamStatus, events) = try await server.request("/v1/chat/completions", body: chat + #", "stream": true}"#)
        XCTAssertEqual(streamStatus, 200)
        let chunks = events.components(separatedBy: "\n\n").filter { !$0.isEmpty }
        XCTAssertEqual(chunks.last, "data: [DONE]")
        let streamed = try chunks.dropLast().map { try json(String($0.dropFirst(6))) }
            .compactMap { (($0["choices"] as? [[String: Any]])?.first?["delta"] as? [String: Any])?["content"] as? String }.joined()
        XCTAssertEqual(streamed, answer, "streamed deltas add up to the answer")

        let (unauthorized, refusal) = try await server.request("/v1/models", key: "wrong")
        XCTAssertEqual(unauthorized, 401)
        XCTAssertEqual((try json(refusal)["error"] as? [String: Any])?["type"] as? String, "authentication_error")
        let (bad, badBody) = try await server.request("/v1/completions", body: #"{"model": "tiny", "prompt": "x", "max_tokens": "many"}"#)
        XCTAssertEqual(bad, 400)
        XCTAssertEqual((try json(badBody)["error"] as? [String: Any])?["param"] as? String, "max_tokens")
        let (huge, _) = try await server.request("/v1/completions", body: "{\"model\": \"tiny\", \"prompt\": \"" + String(repeating: "a", count: 5 << 20) + "\"}")
        XCTAssertEqual(huge, 413)
        let (notJSON, _) = try await server.request("/v1/completions", body: "{\"model\": ")
        XCTAssertEqual(notJSON, 400)

        let stopped = Date()
        kill(server.process.processIdentifier, SIGTERM)
        while server.process.isRunning, Date().timeIntervalSince(stopped) < 10 { usleep(20_000) }
        XCTAssertFalse(server.process.isRunning, "SIGTERM stops the server")
        XCTAssertEqual(server.process.terminationStatus, 0)
        for worker in workers { XCTAssertNotEqual(kill(worker, 0), 0, "rank 1 (pid \(worker)) ended with the server") }
    }

    /// Over two pipeline stages: concurrent requests (micro-batches in flight on both stages) get the greedy text
    /// one rank gives them, and SIGTERM stops the server and its stage.
    func testServeOverPipelineStagesAnswersLikeOneRank() async throws {
        _ = try await checkServeAnswersLikeOneRank(["--pp", "2"], what: "stage 1")
    }

    /// Over two data-parallel replicas: concurrent requests are spread over both (each replica's generated tokens,
    /// in /metrics, are more than zero), each gets one rank's greedy text, and SIGTERM stops both.
    func testServeOverDataParallelReplicasAnswersLikeOneRank() async throws {
        let metrics = try await checkServeAnswersLikeOneRank(["--dp", "2"], what: "replica 1")
        for replica in 0..<2 {
            let line = try XCTUnwrap(
                metrics.split(separator: "\n").first { $0.hasPrefix("tandem:replica_generation_tokens{") && $0.contains("engine=\"\(replica)\"") },
                metrics)
            XCTAssertGreaterThan(Double(line.split(separator: " ").last!) ?? 0, 0, "replica \(replica) generated tokens: \(line)")
        }
    }

    /// Six concurrent greedy completions from a server started with `layout` (one worker process) equal one
    /// rank's `tandem generate`; SIGTERM stops the server and its worker. Returns /metrics after the requests.
    private func checkServeAnswersLikeOneRank(_ layout: [String], what worker: String) async throws -> String {
        let directory = try ServerFixtures.tinyModel(self, chatTemplate: ServerFixtures.chatML)
        let prompts = ["the model", "a pipeline of stages", "two", "micro-batches in flight", "x y z", "stage to stage"]
        let generated = try BuiltProgram.run(
            BuiltProgram.tandem,
            ["generate", "--model", directory.path, "--max-tokens", "12", "--temperature", "0", "--ignore-eos", "--json"] + prompts.flatMap { ["--prompt", $0] })
        XCTAssertEqual(generated.status, 0, generated.output)
        let report = try json(try XCTUnwrap(generated.output.split(separator: "\n").first { $0.hasPrefix("{") }.map(String.init)))
        let expected = try XCTUnwrap(report["outputs"] as? [[String: Any]]).map { $0["text"] as? String }
        XCTAssertEqual(expected.count, prompts.count)

        let server = try ServeProcess(model: directory.path, arguments: layout + ["--served-model-name", "tiny", "--threads", "1"])
        defer { if server.process.isRunning { server.process.terminate() } }
        let workers = childProcesses(of: server.process.processIdentifier)
        XCTAssertEqual(workers.count, 1, "\(worker) runs in its own process")
        let texts = try await withThrowingTaskGroup(of: (Int, String?).self) { group in
            for (index, prompt) in prompts.enumerated() {
                group.addTask {
                    let body = #"{"model": "tiny", "prompt": "\#(prompt)", "max_tokens": 12, "temperature": 0, "ignore_eos": true}"#
                    let (status, text) = try await server.request("/v1/completions", body: body)
                    XCTAssertEqual(status, 200, text)
                    let choice = (try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])?["choices"] as? [[String: Any]]
                    return (index, choice?.first?["text"] as? String)
                }
            }
            var texts = [String?](repeating: nil, count: prompts.count)
            for try await (index, text) in group { texts[index] = text }
            return texts
        }
        XCTAssertEqual(texts, expected, "each request's greedy text over \(layout.joined(separator: " ")) equals one rank's")
        let (_, metrics) = try await server.request("/metrics", key: nil)

        kill(server.process.processIdentifier, SIGTERM)
        let stopped = Date()
        while server.process.isRunning, Date().timeIntervalSince(stopped) < 10 { usleep(20_000) }
        XCTAssertEqual(server.process.terminationStatus, 0)
        for pid in workers { XCTAssertNotEqual(kill(pid, 0), 0, "\(worker) (pid \(pid)) ended with the server") }
        return metrics
    }

    /// SIGTERM while a long stream runs: with a grace period it completes; with none it is aborted at once and
    /// ends with finish reason `abort` and `[DONE]`. Either way the server exits 0 and its rank with it.
    func testSIGTERMGivesOpenRequestsTheGracePeriod() async throws {
        let directory = try ServerFixtures.tinyModel(self)
        let body = #"{"model": "\#(directory.lastPathComponent)", "prompt": "the model", "max_tokens": 480, "ignore_eos": true, "temperature": 0, "stream": true}"#
        for (grace, finish) in [("60", "length"), ("0", "abort")] {
            let server = try ServeProcess(model: directory.path, arguments: ["--tp", "2", "--threads", "1", "--shutdown-grace", grace])
            defer { if server.process.isRunning { server.process.terminate() } }
            let workers = childProcesses(of: server.process.processIdentifier)
            let running = DispatchSemaphore(value: 0)
            let reply = Mutex<[String]?>(nil)
            let done = DispatchSemaphore(value: 0)
            Thread.detachNewThread {
                reply.withLock { $0 = server.stream("/v1/completions", body: body, onFirstEvent: { running.signal() }) }
                done.signal()
            }
            XCTAssertEqual(running.wait(timeout: .now() + 60), .success)
            kill(server.process.processIdentifier, SIGTERM)
            XCTAssertEqual(done.wait(timeout: .now() + 60), .success, "grace \(grace): the stream ended")
            let events = try XCTUnwrap(reply.withLock { $0 }, "grace \(grace): a whole reply")
            XCTAssertEqual(events.last, "data: [DONE]")
            let choices = try events.dropLast().compactMap { (try json(String($0.dropFirst("data: ".count)))["choices"] as? [[String: Any]])?.first }
            XCTAssertEqual(choices.last?["finish_reason"] as? String, finish, "grace \(grace)")
            if finish == "abort" { XCTAssertLessThan(choices.count, 480, "aborted before its end") }
            XCTAssertTrue(server.waitForExit(seconds: 30))
            XCTAssertEqual(server.process.terminationStatus, 0)
            for worker in workers { XCTAssertNotEqual(kill(worker, 0), 0, "rank 1 (pid \(worker)) ended with the server") }
        }
    }

    /// The official `openai` package (PyPI), unchanged, reads every answer: completions and chat, streamed and
    /// not, n = 2, stop strings, a 400 and a 401 as its own exceptions.
    func testTheOpenAIClientWorksUnchanged() async throws {
        let directory = try ServerFixtures.tinyModel(self, chatTemplate: ServerFixtures.chatML)
        let server = try ServeProcess(model: directory.path, arguments: ["--served-model-name", "tiny", "--api-key", "test-key-of-some-length", "--threads", "1"])
        defer { if server.process.isRunning { server.process.terminate() } }

        let data = try ReferenceScript.run("openai_client_check.py", ["http://127.0.0.1:\(server.port)/v1", "test-key-of-some-length", "tiny"])
        let read = try json(String(decoding: data, as: UTF8.self))
        // What the server answers over plain HTTP, to compare with what the client read.
        let (_, plain) = try await server.request("/v1/completions", body: #"{"model": "tiny", "prompt": "the model", "max_tokens": 8, "temperature": 0}"#)
        let text = try XCTUnwrap((try json(plain)["choices"] as? [[String: Any]])?.first?["text"] as? String)
        XCTAssertEqual(read["completion"] as? [String], [text, text])
        XCTAssertEqual(read["completion_finish"] as? [String], ["length", "length"])
        XCTAssertEqual((read["completion_usage"] as? [Int])?.dropFirst().first, 16)
        XCTAssertEqual(read["completion_streamed"] as? String, text)
        XCTAssertEqual((read["completion_streamed_usage"] as? [Int])?.last, 8)
        let chat = #"{"model": "tiny", "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello there"}], "max_tokens": 10, "temperature": 0}"#
        let (_, chatBody) = try await server.request("/v1/chat/completions", body: chat)
        let answer = ((try json(chatBody)["choices"] as? [[String: Any]])?.first?["message"] as? [String: Any])?["content"] as? String
        XCTAssertEqual(read["chat"] as? String, answer)
        XCTAssertEqual(read["chat_role"] as? String, "assistant")
        XCTAssertEqual(read["chat_streamed"] as? String, answer)
        let stop = String(Array(text)[2..<4])
        XCTAssertEqual(read["stopped"] as? String, text.components(separatedBy: stop)[0], "the output ends before the stop string")
        XCTAssertEqual(read["stopped_finish"] as? String, "stop")
        // logprobs=3: the sampled tokens spell the text, each with its log-probability, the top 3 (and the sampled
        // token) by text, offsets by characters; greedy, so the sampled token is the most likely one.
        let scores = try XCTUnwrap(read["completion_logprobs"] as? [String: Any])
        let tokens = try XCTUnwrap(scores["tokens"] as? [String])
        XCTAssertEqual(tokens.joined(), scores["text"] as? String)
        XCTAssertEqual(scores["text"] as? String, text)
        XCTAssertEqual(tokens.count, 8)
        let tokenLogprobs = try XCTUnwrap(scores["token_logprobs"] as? [Double])
        let tops = try XCTUnwrap(scores["top_logprobs"] as? [[String: Double]])
        XCTAssertEqual(tops.count, 8)
        for (index, top) in tops.enumerated() {
            XCTAssertTrue((3...4).contains(top.count), "\(top)")
            XCTAssertTrue(tokenLogprobs[index] <= 0 && top.values.allSatisfy { $0 <= 0 })
            XCTAssertEqual(top.values.max(), tokenLogprobs[index], "greedy: the sampled token is the most likely")
        }
        XCTAssertEqual(scores["text_offset"] as? [Int], tokens.indices.map { tokens[..<$0].joined().unicodeScalars.count })
        XCTAssertEqual(read["completion_streamed_tokens"] as? [String], tokens, "streamed chunks carry the same tokens")
        let chatScores = try XCTUnwrap(read["chat_logprobs"] as? [[String: Any]])
        XCTAssertEqual(chatScores.compactMap { $0["token"] as? String }.joined(), read["chat_logprobs_text"] as? String)
        for entry in chatScores {
            let top = try XCTUnwrap(entry["top"] as? [[Any]])
            XCTAssertEqual(top.count, 2)
            XCTAssertEqual(top.first?.last as? Double, entry["logprob"] as? Double, "greedy: the sampled token is the most likely")
            XCTAssertEqual((entry["bytes"] as? [Int]).map { String(decoding: $0.map(UInt8.init), as: UTF8.self) }, entry["token"] as? String)
        }
        XCTAssertEqual((read["refusal"] as? [Any])?.first as? Int, 400)
        XCTAssertEqual((read["refusal"] as? [Any])?.last as? String, "max_tokens")
        XCTAssertEqual(read["wrong_key"] as? Int, 401)
        XCTAssertEqual(read["models"] as? [String], ["tiny"])
    }

    /// A client that closes its connection while its (not streamed) request runs: the request is aborted —
    /// generation stops far short of what it asked for and its KV blocks are freed — and the server serves on.
    func testAClientThatGoesAwayAbortsItsRequest() async throws {
        let directory = try ServerFixtures.tinyModel(self)
        let model = directory.lastPathComponent
        let server = try ServeProcess(model: directory.path, arguments: ["--threads", "1"])
        defer { if server.process.isRunning { server.process.terminate() } }
        let body = #"{"model": "\#(model)", "prompt": "the model", "max_tokens": 480, "n": 16, "ignore_eos": true}"#
        do {
            let connection = try XCTUnwrap(RawConnection(host: "127.0.0.1", port: UInt16(server.port)))
            let head = "POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n"
            XCTAssertTrue(connection.send(Array((head + body).utf8)))
        }  // closed here, before any reply
        func sample(_ name: String) async throws -> Double {
            let (_, page) = try await server.request("/metrics", key: nil)
            let line = try XCTUnwrap(page.split(separator: "\n").first { $0.hasPrefix("tandem:\(name){") }, page)
            return try XCTUnwrap(Double(line.split(separator: " ").last ?? ""))
        }
        var idle = false
        let deadline = Date(timeIntervalSinceNow: 30)
        while !idle, Date() < deadline {
            try await Task.sleep(nanoseconds: 50_000_000)
            let (running, waiting) = (try await sample("num_requests_running"), try await sample("num_requests_waiting"))
            idle = running == 0 && waiting == 0
        }
        XCTAssertTrue(idle, "the engine went idle")
        let usage = try await sample("kv_cache_usage_perc")
        XCTAssertEqual(usage, 0, "its blocks are free")
        let generated = try await sample("generation_tokens_total")
        XCTAssertLessThan(generated, 16 * 480, "aborted, not run to the end")
        let (status, reply) = try await server.request("/v1/completions", body: #"{"model": "\#(model)", "prompt": "x", "max_tokens": 2}"#, key: nil)
        XCTAssertEqual(status, 200, reply)
    }

    /// A port already taken: the server exits non-zero naming the address, and its rank with it (no hang).
    func testATakenPortIsAnErrorNotAHang() throws {
        let directory = try ServerFixtures.tinyModel(self)
        let holder = try XCTUnwrap(RawListener())
        let run = try BuiltProgram.run(
            BuiltProgram.tandem, ["serve", "--model", directory.path, "--tp", "2", "--threads", "1", "--port", "\(holder.port)"], timeout: 60)
        XCTAssertNotEqual(run.status, 0, run.output)
        XCTAssertLessThan(run.seconds, 30, "it stops rather than hangs")
        XCTAssertTrue(run.output.contains("Address already in use") || run.output.contains("address already in use"), run.output)
    }

    /// `tandem bench serve` against a real server: every request completes with its tokens, which the server's
    /// own counter confirms; the server's TTFT comes from its /metrics; a wrong model name is a counted failure
    /// that names the 404; a server off this host is refused.
    func testBenchServeMeasuresAServer() async throws {
        let directory = try ServerFixtures.tinyModel(self)
        let server = try ServeProcess(model: directory.path, arguments: ["--threads", "1"])
        defer { if server.process.isRunning { server.process.terminate() } }
        let common = ["bench", "serve", "--url", "http://127.0.0.1:\(server.port)", "--model-dir", directory.path, "--input-len", "8", "--output-len", "5"]
        let run = try BuiltProgram.run(BuiltProgram.tandem, common + ["--num-prompts", "6", "--request-rate", "50", "--json"])
        XCTAssertEqual(run.status, 0, run.output)
        let report = try json(try XCTUnwrap(run.lines(containing: "{").last))
        XCTAssertEqual(report["completed"] as? Int, 6, run.output)
        XCTAssertEqual(report["failed"] as? Int, 0)
        XCTAssertEqual(report["output_tokens"] as? Int, 30)
        XCTAssertGreaterThan((report["ttft_ms"] as? [String: Double])?["mean"] ?? 0, 0)
        XCTAssertGreaterThan(report["server_ttft_mean_ms"] as? Double ?? 0, 0)
        XCTAssertGreaterThanOrEqual(report["health_checks"] as? Int ?? 0, 1)
        let (_, metrics) = try await server.request("/metrics", key: nil)
        XCTAssertTrue(metrics.contains("tandem:generation_tokens_total{model_name=\"\(directory.lastPathComponent)\"} 32"), "30 tokens and the warm-up's 2")

        let wrong = try BuiltProgram.run(BuiltProgram.tandem, common + ["--num-prompts", "2", "--model", "nope", "--json"])
        XCTAssertNotEqual(wrong.status, 0, "the warm-up request fails")
        XCTAssertTrue(wrong.output.contains("HTTP 404"), wrong.output)
        let remote = try BuiltProgram.run(BuiltProgram.tandem, ["bench", "serve", "--url", "http://10.1.2.3:8000", "--model-dir", directory.path])
        XCTAssertNotEqual(remote.status, 0)
        XCTAssertTrue(remote.output.contains("loopback"), remote.output)
    }

    /// `tandem info` lists TANDEM_API_KEY without printing the key.
    func testInfoHidesTheAPIKey() throws {
        let run = try BuiltProgram.run(BuiltProgram.tandem, ["info"], environment: ["TANDEM_API_KEY": "do-not-print-this-key"])
        XCTAssertEqual(run.status, 0, run.output)
        XCTAssertFalse(run.output.contains("do-not-print-this-key"), run.output)
        XCTAssertTrue(run.lines(containing: "TANDEM_API_KEY").first?.contains("(set, hidden)") == true, run.output)
    }
}
