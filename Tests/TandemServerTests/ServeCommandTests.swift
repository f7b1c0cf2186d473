import Foundation
import TandemModel
import TandemTestSupport
import XCTest

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// `tandem serve` as users run it: a real process with a spawned second rank (--tp 2), spoken to over HTTP.
final class ServeCommandTests: XCTestCase {
    private final class Server {
        let process = Process()
        let port: Int
        private let errors = Pipe()

        init(model: String, arguments: [String]) throws {
            process.executableURL = URL(fileURLWithPath: BuiltProgram.tandem)
            process.arguments = ["serve", "--model", model, "--port", "0"] + arguments
            process.standardError = errors
            process.standardOutput = FileHandle.nullDevice
            try process.run()
            var text = ""
            let deadline = Date(timeIntervalSinceNow: 60)
            while !text.contains("on http://"), Date() < deadline, process.isRunning {
                text += String(decoding: errors.fileHandleForReading.availableData, as: UTF8.self)
            }
            guard let range = text.range(of: #"on http://127\.0\.0\.1:(\d+)"#, options: .regularExpression),
                let port = Int(text[range].split(separator: ":").last ?? "")
            else {
                process.terminate()
                throw NSError(domain: "serve", code: 1, userInfo: [NSLocalizedDescriptionKey: "tandem serve did not start: \(text)"])
            }
            self.port = port
        }

        func request(_ path: String, body: String? = nil, key: String? = "test-key-of-some-length") async throws -> (Int, String) {
            var request = URLRequest(url: URL(string: "http://127.0.0.1:\(port)\(path)")!)
            request.timeoutInterval = 60
            if let body {
                request.httpMethod = "POST"
                request.httpBody = Data(body.utf8)
                request.setValue("application/json", forHTTPHeaderField: "Content-Type")
            }
            if let key { request.setValue("Bearer \(key)", forHTTPHeaderField: "Authorization") }
            let (data, response) = try await URLSession.shared.data(for: request)
            return ((response as? HTTPURLResponse)?.statusCode ?? 0, String(decoding: data, as: UTF8.self))
        }
    }

    private func json(_ text: String) throws -> [String: Any] {
        try XCTUnwrap(JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any], text)
    }

    func testServeAnswersLikeGenerateAndStopsOnSIGTERM() async throws {
        let directory = try ServerFixtures.tinyModel(self, chatTemplate: ServerFixtures.chatML)

        let generated = try BuiltProgram.run(BuiltProgram.tandem, ["generate", "--model", directory.path, "--tp", "2", "--prompt", "the model", "--max-tokens", "8", "--temperature", "0"])
        let line = try XCTUnwrap(generated.lines(containing: "output: ").first)
        let expected = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(("[" + line.components(separatedBy: "output: ")[1].components(separatedBy: "  [")[0] + "]").utf8)) as? [String])[0]

        let server = try Server(model: directory.path, arguments: ["--tp", "2", "--served-model-name", "tiny", "--api-key", "test-key-of-some-length", "--threads", "1"])
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

    /// A rank killed with kill -9: /health turns 503 within 2 s and requests get a 503 that says to retry,
    /// in OpenAI's error shape (restarting the rank group is issue 10's next part).
    func testAKilledRankTurnsHealthTo503() async throws {
        let directory = try ServerFixtures.tinyModel(self)
        let server = try Server(model: directory.path, arguments: ["--tp", "2", "--threads", "1"])
        defer { if server.process.isRunning { server.process.terminate() } }
        let model = directory.lastPathComponent
        let worker = try XCTUnwrap(childProcesses(of: server.process.processIdentifier).first)
        let (before, _) = try await server.request("/health", key: nil)
        XCTAssertEqual(before, 200)
        kill(worker, SIGKILL)
        let killed = Date()
        var status = 200
        while status == 200, Date().timeIntervalSince(killed) < 5 {
            (status, _) = try await server.request("/health", key: nil)
            if status == 200 { try await Task.sleep(nanoseconds: 20_000_000) }
        }
        XCTAssertEqual(status, 503)
        XCTAssertLessThan(Date().timeIntervalSince(killed), 2, "/health noticed the dead rank within 2 s")
        let (refused, body) = try await server.request("/v1/completions", body: #"{"model": "\#(model)", "prompt": "x", "max_tokens": 2}"#, key: nil)
        XCTAssertEqual(refused, 503, body)
        let error = try XCTUnwrap(try json(body)["error"] as? [String: Any])
        XCTAssertEqual(error["type"] as? String, "service_unavailable")
        XCTAssertTrue((error["message"] as? String)?.contains("rank 1") == true, body)
        XCTAssertTrue((error["message"] as? String)?.hasSuffix("retry later") == true, body)
    }

    /// The official `openai` package (PyPI), unchanged, reads every answer: completions and chat, streamed and
    /// not, n = 2, stop strings, a 400 and a 401 as its own exceptions.
    func testTheOpenAIClientWorksUnchanged() async throws {
        let directory = try ServerFixtures.tinyModel(self, chatTemplate: ServerFixtures.chatML)
        let server = try Server(model: directory.path, arguments: ["--served-model-name", "tiny", "--api-key", "test-key-of-some-length", "--threads", "1"])
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
        XCTAssertEqual((read["refusal"] as? [Any])?.first as? Int, 400)
        XCTAssertEqual((read["refusal"] as? [Any])?.last as? String, "max_tokens")
        XCTAssertEqual(read["wrong_key"] as? Int, 401)
        XCTAssertEqual(read["models"] as? [String], ["tiny"])
    }

    /// `tandem info` lists TANDEM_API_KEY without printing the key.
    func testInfoHidesTheAPIKey() throws {
        let run = try BuiltProgram.run(BuiltProgram.tandem, ["info"], environment: ["TANDEM_API_KEY": "do-not-print-this-key"])
        XCTAssertEqual(run.status, 0, run.output)
        XCTAssertFalse(run.output.contains("do-not-print-this-key"), run.output)
        XCTAssertTrue(run.lines(containing: "TANDEM_API_KEY").first?.contains("(set, hidden)") == true, run.output)
    }
}
