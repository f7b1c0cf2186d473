import Foundation
import Synchronization
import TandemTestSupport
import XCTest

/// Bad requests against a real `tandem serve` while a stream runs: each gets its 4xx in OpenAI's shape naming
/// the field, and the stream's text is exactly what it is when nothing else happens.
final class ServeBadInputTests: XCTestCase {
    private func json(_ text: String) throws -> [String: Any] {
        try XCTUnwrap(JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any], text)
    }

    private func streamedText(_ events: [String]) throws -> String {
        XCTAssertEqual(events.last, "data: [DONE]")
        return try events.dropLast().compactMap { (try json(String($0.dropFirst("data: ".count)))["choices"] as? [[String: Any]])?.first?["text"] as? String }
            .joined()
    }

    func testBadRequestsAreRefusedWithoutDisturbingAStream() async throws {
        let directory = try ServerFixtures.tinyModel(self, chatTemplate: ServerFixtures.chatML)
        let model = directory.lastPathComponent
        let server = try ServeProcess(model: directory.path, arguments: ["--tp", "2", "--threads", "1"])
        defer { if server.process.isRunning { server.process.terminate() } }
        let streamBody = #"{"model": "\#(model)", "prompt": "the model", "max_tokens": 400, "ignore_eos": true, "temperature": 0, "stream": true}"#
        let alone = try streamedText(try XCTUnwrap(server.stream("/v1/completions", body: streamBody)))

        let reply = Mutex<[String]?>(nil)
        let done = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            reply.withLock { $0 = server.stream("/v1/completions", body: streamBody) }
            done.signal()
        }
        let overContext = (0..<600).map { String($0 % 200 + 10) }.joined(separator: ", ")
        let cases: [(path: String, body: Data, status: Int, param: String?, message: String)] = [
            ("/v1/completions", Data(#"{"model": "#.utf8), 400, nil, "not JSON"),
            ("/v1/completions", Data(#"{"model": "\#(model)", "prompt": "x", "max_tokens": "many"}"#.utf8), 400, "max_tokens", "integer"),
            ("/v1/completions", Data(#"{"model": "\#(model)", "prompt": "x", "max_tokens": -5}"#.utf8), 400, "max_tokens", "-5"),
            ("/v1/completions", Data(#"{"model": "\#(model)", "prompt": "x", "max_tokens": 1000000000000}"#.utf8), 400, "max_tokens", "1000000000000"),
            ("/v1/completions", Data(#"{"model": "\#(model)", "prompt": "x", "max_tokens": 100000}"#.utf8), 400, "prompt", "maximum context length is 512"),
            ("/v1/completions", Data(#"{"model": "\#(model)", "prompt": [\#(overContext)]}"#.utf8), 400, "prompt", "maximum context length is 512"),
            ("/v1/completions", Data(#"{"model": "\#(model)", "prompt": "x", "best_of": 1, "temprature": 1}"#.utf8), 400, "temprature", "unrecognized"),
            ("/v1/chat/completions", Data(#"{"model": "\#(model)", "messages": []}"#.utf8), 400, "messages", "non-empty"),
            ("/v1/completions", Data([0x7B, 0x22, 0xFF, 0xFE, 0x22, 0x7D]), 400, nil, "not UTF-8"),
            ("/v1/completions", Data(repeating: 0x20, count: 10 << 20), 413, nil, "larger than"),
            ("/v1/completions", Data(#"{"model": "other", "prompt": "x"}"#.utf8), 404, "model", "does not exist"),
        ]
        for (path, body, status, param, message) in cases {
            let (answered, text, _) = try await server.requestWithHeaders(path, bytes: body, key: nil)
            XCTAssertEqual(answered, status, text)
            let error = try XCTUnwrap(try json(text)["error"] as? [String: Any], text)
            XCTAssertEqual(error["param"] as? String, param, text)
            XCTAssertTrue((error["message"] as? String)?.contains(message) == true, "\(message) in \(text)")
            XCTAssertEqual(error["code"] as? Int, status)
        }
        XCTAssertEqual(done.wait(timeout: .now() + 60), .success)
        let events = try XCTUnwrap(reply.withLock { $0 })
        XCTAssertEqual(try streamedText(events), alone, "the stream is undisturbed")
    }
}
