import ArgumentParser
import AsyncHTTPClient
import Dispatch
import Foundation
import NIOCore
import Synchronization
import TandemComm
import TandemModel
import TandemTensor

/// `tandem bench serve`: vLLM's benchmark_serving against any OpenAI-compatible server on this host.
struct BenchServe: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Online serving: streamed random-token completions sent to a server at Poisson arrivals (vLLM's benchmark_serving).",
        discussion: """
            Prompts are the random token ids `bench throughput --seed` draws for the checkpoint at --model-dir, so both \
            benchmarks run the same requests; generation is greedy and ignores end-of-sequence (--output-len tokens \
            each), after one untimed warm-up request. Requests arrive as a Poisson process of --request-rate per second (inf: all at once), at most \
            --concurrency at a time; the run stops after --max-seconds, counting what did not finish as failed. \
            Meanwhile /health is asked every 100 ms and its latency reported; a server exporting \
            time_to_first_token_seconds on /metrics (Tandem, vLLM) also gives its own mean over the same requests. Reports throughput and the mean, \
            median and p99 of time to first token (TTFT), time per output token after the first (TPOT), \
            inter-token latency (ITL, between streamed chunks) and end-to-end latency. Loopback servers only.
            """)

    @Option(help: "The server's base URL (loopback only).")
    var url = "http://127.0.0.1:8000"

    @Option(help: "The served model name (default: the first of /v1/models).")
    var model: String?

    @Option(name: .customLong("model-dir"), help: "The checkpoint directory (its config.json's vocabulary gives the random prompts).")
    var modelDirectory: String

    @Option(name: .customLong("num-prompts"), help: "Requests.")
    var numPrompts = 64

    @Option(name: .customLong("request-rate"), help: "Mean arrivals per second (Poisson), or inf for all at once.")
    var requestRate = "inf"

    @Option(name: .customLong("input-len"), help: "Prompt tokens per request.")
    var inputLength = 128

    @Option(name: .customLong("output-len"), help: "Generated tokens per request.")
    var outputLength = 128

    @Option(help: "Requests in flight at most (default: no limit).")
    var concurrency: Int?

    @Option(help: "Seed of the random prompts and arrival times.")
    var seed: UInt64 = 0

    @Option(name: .customLong("max-seconds"), help: "Stop the run after this many seconds.")
    var maxSeconds = 600.0

    @Option(name: .customLong("api-key"), help: "Sent as Authorization: Bearer (default: TANDEM_API_KEY, or none).")
    var apiKey: String?

    @Flag(help: "Print one JSON object.")
    var json = false

    func validate() throws {
        guard numPrompts >= 1, inputLength >= 1, outputLength >= 1 else { throw ValidationError("--num-prompts, --input-len and --output-len must be ≥ 1") }
        guard rate != nil else { throw ValidationError("--request-rate must be a positive number or inf, got \(requestRate)") }
        if let concurrency, concurrency < 1 { throw ValidationError("--concurrency must be ≥ 1, got \(concurrency)") }
        guard maxSeconds > 0, maxSeconds.isFinite else { throw ValidationError("--max-seconds must be positive") }
        guard let host = URL(string: url)?.host, url.hasPrefix("http://") else { throw ValidationError("--url must be http://HOST:PORT, got \(url)") }
        guard host == "localhost" || host == "::1" || host == "[::1]" || host.hasPrefix("127.") else {
            throw ValidationError("--url must be a loopback address (127.x.y.z, localhost or ::1): bench serve only measures servers on this host, got \(host)")
        }
    }

    /// Arrivals per second; infinity for all at once; nil when not a positive number.
    private var rate: Double? {
        if requestRate == "inf" { return .infinity }
        guard let value = Double(requestRate), value > 0, value.isFinite else { return nil }
        return value
    }

    /// What one request saw.
    struct Outcome: Sendable {
        var failure: String?
        var timeToFirstToken = 0.0
        var interTokenSeconds: [Double] = []
        var latency = 0.0
        var outputTokens = 0
    }

    /// Mean, median and p99 (linear interpolation, as numpy's percentile), in milliseconds.
    struct Summary: Codable {
        var mean = 0.0
        var median = 0.0
        var p99 = 0.0

        init(_ seconds: [Double]) {
            guard !seconds.isEmpty else { return }
            let sorted = seconds.sorted()
            func percentile(_ p: Double) -> Double {
                let position = p / 100 * Double(sorted.count - 1)
                let low = Int(position.rounded(.down))
                let high = min(low + 1, sorted.count - 1)
                return (sorted[low] + (sorted[high] - sorted[low]) * (position - Double(low))) * 1000
            }
            mean = sorted.reduce(0, +) / Double(sorted.count) * 1000
            median = percentile(50)
            p99 = percentile(99)
        }
    }

    struct Report: Codable {
        var model = ""
        var numPrompts = 0
        var inputLength = 0
        var outputLength = 0
        var requestRate = ""
        var concurrency: Int?
        var completed = 0
        var failed = 0
        var firstFailure: String?
        var durationSeconds = 0.0
        var outputTokens = 0
        var requestsPerSecond = 0.0
        var outputTokensPerSecond = 0.0
        var totalTokensPerSecond = 0.0
        var timeToFirstTokenMilliseconds = Summary([])
        var timePerOutputTokenMilliseconds = Summary([])
        var interTokenLatencyMilliseconds = Summary([])
        var endToEndLatencyMilliseconds = Summary([])
        var healthChecks = 0
        var healthFailures = 0
        var healthMilliseconds = Summary([])
        /// The server's own mean time to first token over the timed requests, from its /metrics
        /// (`tandem:` or `vllm:time_to_first_token_seconds`), when it exports one.
        var serverTimeToFirstTokenMeanMilliseconds: Double?

        enum CodingKeys: String, CodingKey {
            case model, numPrompts = "num_prompts", inputLength = "input_len", outputLength = "output_len", requestRate = "request_rate", concurrency
            case completed, failed, firstFailure = "first_failure", durationSeconds = "duration_s", outputTokens = "output_tokens"
            case requestsPerSecond = "requests_per_s", outputTokensPerSecond = "output_tokens_per_s", totalTokensPerSecond = "total_tokens_per_s"
            case timeToFirstTokenMilliseconds = "ttft_ms", timePerOutputTokenMilliseconds = "tpot_ms", interTokenLatencyMilliseconds = "itl_ms"
            case endToEndLatencyMilliseconds = "e2el_ms", healthChecks = "health_checks", healthFailures = "health_failures", healthMilliseconds = "health_ms"
            case serverTimeToFirstTokenMeanMilliseconds = "server_ttft_mean_ms"
        }
    }

    func run() throws {
        let config: ModelConfig
        do {
            config = try ModelFiles.config(modelDirectory)
        } catch {
            throw CommandFailure("\(modelDirectory): \(error)")
        }
        var random = RandomPrompts(seed: seed, vocabularySize: config.vocabularySize)
        let prompts = random.prompts(numPrompts, length: inputLength)
        // As `bench throughput`: one untimed request first, on tokens drawn after the prompts.
        let warmUp = random.tokens(min(inputLength, 16))
        let done = DispatchSemaphore(value: 0)
        let result = Mutex<Result<Report, any Error>?>(nil)
        let command = self
        Task {
            let outcome: Result<Report, any Error>
            do {
                outcome = .success(try await command.measure(prompts, warmUp: warmUp))
            } catch {
                outcome = .failure(error)
            }
            result.withLock { $0 = outcome }
            done.signal()
        }
        done.wait()
        let report = try result.withLock { $0! }.get()
        if json {
            print(try jsonLine(report))
        } else {
            print(describe(report))
        }
        fflush(nil)
    }

    private func measure(_ prompts: [[Int]], warmUp: [Int]) async throws -> Report {
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: max(prompts.count, 8) + 2)
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        do {
            let report = try await measure(prompts, warmUp: warmUp, client: client)
            try await client.shutdown()
            return report
        } catch {
            try? await client.shutdown()
            throw error
        }
    }

    private func measure(_ prompts: [[Int]], warmUp: [Int], client: HTTPClient) async throws -> Report {
        let base = url.hasSuffix("/") ? String(url.dropLast()) : url
        let key = apiKey ?? TandemEnvironment.apiKey.value
        let name: String
        if let model { name = model } else { name = try await servedModel(base: base, key: key, client: client) }
        let bodies = try prompts.map { prompt in
            try JSONSerialization.data(withJSONObject: [
                "model": name, "prompt": prompt, "max_tokens": outputLength, "temperature": 0, "ignore_eos": true, "stream": true,
                "stream_options": ["include_usage": true],
            ] as [String: Any])
        }
        let first = try JSONSerialization.data(withJSONObject: [
            "model": name, "prompt": warmUp, "max_tokens": 2, "temperature": 0, "ignore_eos": true, "stream": true,
        ] as [String: Any])
        let warm = await Self.send(first, to: base + "/v1/completions", key: key, client: client, deadline: .now() + .seconds(300))
        if let failure = warm.failure { throw CommandFailure("the warm-up request failed: \(failure)") }
        let serverBefore = await serverTimeToFirstToken(base: base, client: client)
        var arrivals = SeededGenerator(seed: seed &+ 1)
        let rate = self.rate!
        let limit = concurrency ?? Int.max
        let deadline = NIODeadline.now() + .nanoseconds(Int64(maxSeconds * 1e9))
        let running = Atomic(true)
        let start = DispatchTime.now().uptimeNanoseconds
        async let health = probeHealth(base: base, client: client, running: running)
        var outcomes: [Outcome] = []
        await withTaskGroup(of: Outcome.self) { group in
            var inFlight = 0
            for body in bodies {
                if inFlight >= limit, let outcome = await group.next() {
                    outcomes.append(outcome)
                    inFlight -= 1
                }
                if rate.isFinite {
                    let gap = -log(1 - Double.random(in: 0..<1, using: &arrivals)) / rate
                    try? await Task.sleep(nanoseconds: UInt64(gap * 1e9))
                }
                guard NIODeadline.now() < deadline else {
                    outcomes.append(Outcome(failure: "not sent: --max-seconds \(maxSeconds) passed"))
                    continue
                }
                group.addTask { await Self.send(body, to: base + "/v1/completions", key: key, client: client, deadline: deadline) }
                inFlight += 1
            }
            for await outcome in group { outcomes.append(outcome) }
        }
        let duration = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        running.store(false, ordering: .sequentiallyConsistent)
        let probes = await health
        let serverAfter = await serverTimeToFirstToken(base: base, client: client)

        let completed = outcomes.filter { $0.failure == nil }
        let outputTokens = completed.reduce(0) { $0 + $1.outputTokens }
        var report = Report(
            model: name, numPrompts: prompts.count, inputLength: inputLength, outputLength: outputLength, requestRate: requestRate, concurrency: concurrency,
            completed: completed.count, failed: outcomes.count - completed.count, firstFailure: outcomes.lazy.compactMap(\.failure).first,
            durationSeconds: duration, outputTokens: outputTokens)
        report.requestsPerSecond = Double(completed.count) / duration
        report.outputTokensPerSecond = Double(outputTokens) / duration
        report.totalTokensPerSecond = Double(outputTokens + completed.count * inputLength) / duration
        report.timeToFirstTokenMilliseconds = Summary(completed.map(\.timeToFirstToken))
        report.timePerOutputTokenMilliseconds = Summary(
            completed.filter { $0.outputTokens > 1 }.map { ($0.latency - $0.timeToFirstToken) / Double($0.outputTokens - 1) })
        report.interTokenLatencyMilliseconds = Summary(completed.flatMap(\.interTokenSeconds))
        report.endToEndLatencyMilliseconds = Summary(completed.map(\.latency))
        report.healthChecks = probes.count
        report.healthFailures = probes.filter { $0 == nil }.count
        report.healthMilliseconds = Summary(probes.compactMap { $0 })
        if let serverBefore, let serverAfter, serverAfter.count > serverBefore.count {
            report.serverTimeToFirstTokenMeanMilliseconds = (serverAfter.sum - serverBefore.sum) / (serverAfter.count - serverBefore.count) * 1000
        }
        return report
    }

    /// The first model `/v1/models` lists.
    private func servedModel(base: String, key: String?, client: HTTPClient) async throws -> String {
        var request = HTTPClientRequest(url: base + "/v1/models")
        if let key { request.headers.add(name: "Authorization", value: "Bearer \(key)") }
        let response = try await client.execute(request, timeout: .seconds(30))
        let body = try await response.body.collect(upTo: 1 << 20)
        guard response.status == .ok,
            let object = try? JSONSerialization.jsonObject(with: Data(buffer: body)) as? [String: Any],
            let name = (object["data"] as? [[String: Any]])?.first?["id"] as? String
        else {
            throw CommandFailure("\(base)/v1/models answered \(response.status.code) without a model: \(String(buffer: body))")
        }
        return name
    }

    /// Sends one streamed completion and times its chunks.
    private static func send(_ body: Data, to url: String, key: String?, client: HTTPClient, deadline: NIODeadline) async -> Outcome {
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        // A connection per request, as each benchmark client would open: a pooled one that the server closed
        // meanwhile (llama-server does) fails the request with "I/O on closed channel".
        request.headers.add(name: "Connection", value: "close")
        if let key { request.headers.add(name: "Authorization", value: "Bearer \(key)") }
        request.body = .bytes(ByteBuffer(bytes: body))
        let start = DispatchTime.now().uptimeNanoseconds
        func since(_ time: UInt64) -> Double { Double(DispatchTime.now().uptimeNanoseconds - time) / 1e9 }
        var outcome = Outcome()
        do {
            let response = try await client.execute(request, deadline: deadline)
            guard response.status == .ok else {
                let text = String(buffer: try await response.body.collect(upTo: 1 << 20))
                return Outcome(failure: "HTTP \(response.status.code): \(text.prefix(300))")
            }
            var pending: [UInt8] = []
            var last: UInt64?
            var chunks = 0
            var usage: Int?
            reading: for try await buffer in response.body {
                pending += buffer.readableBytesView
                while let end = pending.firstRange(of: [10, 10]) {
                    let event = String(decoding: pending[..<end.lowerBound], as: UTF8.self)
                    pending.removeSubrange(..<end.upperBound)
                    guard event.hasPrefix("data: ") else { continue }
                    let payload = event.dropFirst(6)
                    if payload == "[DONE]" { break reading }
                    guard let object = try? JSONSerialization.jsonObject(with: Data(payload.utf8)) as? [String: Any] else {
                        return Outcome(failure: "not a JSON event: \(payload.prefix(300))")
                    }
                    if let error = object["error"] { return Outcome(failure: "error event: \(error)") }
                    if let tokens = (object["usage"] as? [String: Any])?["completion_tokens"] as? Int { usage = tokens }
                    guard let text = (object["choices"] as? [[String: Any]])?.first?["text"] as? String, !text.isEmpty else { continue }
                    let now = DispatchTime.now().uptimeNanoseconds
                    if let last {
                        outcome.interTokenSeconds.append(Double(now - last) / 1e9)
                    } else {
                        outcome.timeToFirstToken = Double(now - start) / 1e9
                    }
                    last = now
                    chunks += 1
                }
            }
            outcome.latency = since(start)
            guard last != nil else { return Outcome(failure: "the stream ended without text") }
            // A server that does not report usage: one chunk per token, as vLLM's benchmark counts them.
            outcome.outputTokens = usage ?? chunks
            return outcome
        } catch {
            return Outcome(failure: "\(error)")
        }
    }

    /// The sum and count of the server's time-to-first-token histogram on its /metrics, or nil without one.
    private func serverTimeToFirstToken(base: String, client: HTTPClient) async -> (sum: Double, count: Double)? {
        guard let response = try? await client.execute(HTTPClientRequest(url: base + "/metrics"), timeout: .seconds(30)), response.status == .ok,
            let body = try? await response.body.collect(upTo: 16 << 20)
        else { return nil }
        var sum: Double?
        var count: Double?
        for line in String(buffer: body).split(separator: "\n") {
            for prefix in ["tandem:", "vllm:"] where line.hasPrefix(prefix + "time_to_first_token_seconds_") {
                let value = line.split(separator: " ").last.flatMap { Double($0) }
                if line.hasPrefix(prefix + "time_to_first_token_seconds_sum") { sum = (sum ?? 0) + (value ?? 0) }
                if line.hasPrefix(prefix + "time_to_first_token_seconds_count") { count = (count ?? 0) + (value ?? 0) }
            }
        }
        guard let sum, let count else { return nil }
        return (sum, count)
    }

    /// Asks /health every 100 ms while `running`; each answer's seconds, nil for one that was not 200.
    private func probeHealth(base: String, client: HTTPClient, running: borrowing Atomic<Bool>) async -> [Double?] {
        var latencies: [Double?] = []
        while running.load(ordering: .sequentiallyConsistent) {
            let start = DispatchTime.now().uptimeNanoseconds
            let response = try? await client.execute(HTTPClientRequest(url: base + "/health"), timeout: .seconds(10))
            _ = try? await response?.body.collect(upTo: 1 << 16)
            latencies.append(response?.status == .ok ? Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 : nil)
            try? await Task.sleep(nanoseconds: 100_000_000)
        }
        return latencies
    }

    private func describe(_ report: Report) -> String {
        func row(_ name: String, _ summary: Summary) -> String {
            String(format: "  %-28@ mean %9.2f   median %9.2f   p99 %9.2f", name as NSString, summary.mean, summary.median, summary.p99)
        }
        var lines = [
            "bench serve \(url) model \(report.model): \(report.numPrompts) prompts × (\(inputLength) in, \(outputLength) out), rate \(requestRate)/s"
                + (concurrency.map { ", concurrency \($0)" } ?? ""),
            String(format: "  completed %d, failed %d, duration %.2f s", report.completed, report.failed, report.durationSeconds),
            String(
                format: "  throughput %.2f requests/s, %.1f output tokens/s, %.1f total tokens/s", report.requestsPerSecond, report.outputTokensPerSecond,
                report.totalTokensPerSecond),
            row("time to first token (ms)", report.timeToFirstTokenMilliseconds),
            row("time per output token (ms)", report.timePerOutputTokenMilliseconds),
            row("inter-token latency (ms)", report.interTokenLatencyMilliseconds),
            row("end-to-end latency (ms)", report.endToEndLatencyMilliseconds),
            row("/health (ms, \(report.healthChecks) asked)", report.healthMilliseconds),
        ]
        if let inside = report.serverTimeToFirstTokenMeanMilliseconds {
            lines.append(
                String(
                    format: "  time to first token inside the server (its /metrics): mean %.2f ms; the client saw %.2f ms more", inside,
                    report.timeToFirstTokenMilliseconds.mean - inside))
        }
        if report.healthFailures > 0 { lines.append("  /health answered other than 200 \(report.healthFailures) times") }
        if let failure = report.firstFailure { lines.append("  first failure: \(failure)") }
        return lines.joined(separator: "\n")
    }
}
