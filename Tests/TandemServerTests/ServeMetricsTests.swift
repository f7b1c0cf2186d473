import Foundation
import TandemTestSupport
import XCTest

/// `GET /metrics` read by `prometheus_client`'s own parser (tools/reference/prometheus_scrape.py): its counters
/// and histogram counts equal what the replies said, and they carry over a restart of the ranks.
final class ServeMetricsTests: XCTestCase {
    private func json(_ text: String) throws -> [String: Any] {
        try XCTUnwrap(JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any], text)
    }

    /// Every sample of the page: name → [(labels, value)].
    private func scrape(_ server: ServeProcess) throws -> [String: [([String: String], Double)]] {
        let page = try XCTUnwrap(
            try JSONSerialization.jsonObject(with: ReferenceScript.run("prometheus_scrape.py", ["http://127.0.0.1:\(server.port)/metrics"])) as? [String: [[Any]]])
        return page.mapValues { $0.map { (($0[0] as? [String: String]) ?? [:], ($0[1] as? Double) ?? .nan) } }
    }

    /// The one value of `name` whose labels include `labels`.
    private func value(_ page: [String: [([String: String], Double)]], _ name: String, _ labels: [String: String] = [:]) throws -> Double {
        let matching = (page[name] ?? []).filter { sample in labels.allSatisfy { sample.0[$0.key] == $0.value } }
        XCTAssertEqual(matching.count, 1, "\(name) \(labels): \(matching)")
        return try XCTUnwrap(matching.first?.1, name)
    }

    func testMetricsCountWhatTheRepliesSaidAndCarryOverARestart() async throws {
        let directory = try ServerFixtures.tinyModel(self)
        let model = directory.lastPathComponent
        let server = try ServeProcess(model: directory.path, arguments: ["--tp", "2", "--threads", "1"])
        defer { if server.process.isRunning { server.process.terminate() } }

        // Prompts shorter than a KV block (16), so no prefix-cache hit makes a prompt cost less than its length.
        var promptTokens = 0
        var generated = 0
        var choices = 0
        var gaps = 0
        for (body, n) in [
            (#"{"model": "\#(model)", "prompt": "the model", "max_tokens": 10, "ignore_eos": true, "temperature": 0}"#, 1),
            (#"{"model": "\#(model)", "prompt": ["one two", "three four five"], "max_tokens": 5, "n": 2, "ignore_eos": true}"#, 2),
        ] {
            let (status, reply) = try await server.request("/v1/completions", body: body, key: nil)
            XCTAssertEqual(status, 200, reply)
            let usage = try XCTUnwrap(try json(reply)["usage"] as? [String: Int])
            // Each of the n choices computes its prompt.
            promptTokens += usage["prompt_tokens"]! * n
            generated += usage["completion_tokens"]!
            let count = (try json(reply)["choices"] as? [Any])?.count ?? 0
            choices += count
            gaps += usage["completion_tokens"]! - count
        }
        let events = try XCTUnwrap(server.stream(
            "/v1/completions",
            body: #"{"model": "\#(model)", "prompt": "streamed", "max_tokens": 7, "ignore_eos": true, "stream": true, "stream_options": {"include_usage": true}}"#))
        let usage = try XCTUnwrap(try json(String(events[events.count - 2].dropFirst("data: ".count)))["usage"] as? [String: Int])
        (promptTokens, generated, choices, gaps) = (promptTokens + usage["prompt_tokens"]!, generated + usage["completion_tokens"]!, choices + 1, gaps + 6)

        let labels = ["model_name": model]
        let page = try scrape(server)
        XCTAssertEqual(try value(page, "tandem:prompt_tokens_total", labels), Double(promptTokens))
        XCTAssertEqual(try value(page, "tandem:generation_tokens_total", labels), Double(generated))
        XCTAssertEqual(try value(page, "tandem:request_success_total", ["finished_reason": "length"]), Double(choices))
        XCTAssertEqual(try value(page, "tandem:request_success_total", ["finished_reason": "stop"]), 0)
        for histogram in ["time_to_first_token_seconds", "e2e_request_latency_seconds", "request_queue_time_seconds", "request_prompt_tokens"] {
            XCTAssertEqual(try value(page, "tandem:\(histogram)_count", labels), Double(choices), histogram)
        }
        XCTAssertEqual(try value(page, "tandem:inter_token_latency_seconds_count", labels), Double(gaps))
        XCTAssertEqual(try value(page, "tandem:request_generation_tokens_sum", labels), Double(generated))
        XCTAssertEqual(try value(page, "tandem:time_to_first_token_seconds_bucket", ["le": "+Inf"]), Double(choices))
        XCTAssertEqual(try value(page, "tandem:num_requests_running", labels), 0)
        XCTAssertEqual(try value(page, "tandem:num_requests_waiting", labels), 0)
        XCTAssertTrue((0...1).contains(try value(page, "tandem:kv_cache_usage_perc", labels)))
        XCTAssertEqual(try value(page, "tandem:engine_restarts_total", labels), 0)
        let e2e = try value(page, "tandem:e2e_request_latency_seconds_sum", labels)
        XCTAssertTrue(e2e > 0 && e2e < 60, "\(e2e)")

        let worker = try XCTUnwrap(childProcesses(of: server.process.processIdentifier).first)
        kill(worker, SIGKILL)
        XCTAssertTrue(server.waitForLog("the ranks are up again", seconds: 60), server.log)
        let (status, reply) = try await server.request(
            "/v1/completions", body: #"{"model": "\#(model)", "prompt": "again", "max_tokens": 3, "ignore_eos": true}"#, key: nil)
        XCTAssertEqual(status, 200, reply)
        let after = try scrape(server)
        XCTAssertEqual(try value(after, "tandem:engine_restarts_total", labels), 1)
        XCTAssertEqual(try value(after, "tandem:generation_tokens_total", labels), Double(generated + 3), "the counter carried over the restart")
        XCTAssertGreaterThan(try value(after, "tandem:prompt_tokens_total", labels), Double(promptTokens))
        XCTAssertEqual(try value(after, "tandem:request_success_total", ["finished_reason": "length"]), Double(choices + 1))
    }
}
