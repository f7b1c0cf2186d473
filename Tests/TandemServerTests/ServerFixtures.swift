import Foundation
import TandemModel
import TandemTestSupport
import XCTest

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// The checkpoint the server tests serve: the tiny preset, with a ChatML chat template when asked.
enum ServerFixtures {
    /// A ChatML template (Qwen2's layout) written out plainly.
    static let chatML = """
        {% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}{% endfor %}\
        {% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}
        """

    /// Writes the tiny preset (and `chatTemplate` as chat_template.jinja; `maxPositions` as its
    /// max_position_embeddings, for long generations) into a fresh directory removed after the test.
    static func tinyModel(_ test: XCTestCase, chatTemplate: String? = nil, maxPositions: Int? = nil) throws -> URL {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tandem-serve-\(UUID().uuidString)")
        test.addTeardownBlock { try? FileManager.default.removeItem(at: directory) }
        try ModelWriter.write(.tiny, dtype: .bfloat16, seed: 1, to: directory.path)
        if let chatTemplate { try Data(chatTemplate.utf8).write(to: directory.appendingPathComponent("chat_template.jinja")) }
        if let maxPositions {
            let configURL = directory.appendingPathComponent("config.json")
            var config = try JSONSerialization.jsonObject(with: Data(contentsOf: configURL)) as! [String: Any]
            config["max_position_embeddings"] = maxPositions
            try JSONSerialization.data(withJSONObject: config).write(to: configURL)
        }
        return directory
    }
}

/// `tandem serve` as a real process on a free port; its standard error is collected as it comes.
final class ServeProcess: @unchecked Sendable {
    let process = Process()
    private(set) var port = 0
    private let errors = Pipe()
    private let lock = NSLock()
    private var collected = ""

    init(model: String, arguments: [String]) throws {
        process.executableURL = URL(fileURLWithPath: BuiltProgram.tandem)
        process.arguments = ["serve", "--model", model, "--port", "0"] + arguments
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        let handle = errors.fileHandleForReading
        Thread.detachNewThread { [self] in
            // `availableData` returns what has come (empty at the end); `read(upToCount:)` would wait for the count.
            while case let data = handle.availableData, !data.isEmpty {
                lock.withLock { collected += String(decoding: data, as: UTF8.self) }
            }
        }
        _ = waitForLog("on http://", seconds: 60)
        let text = log
        guard let range = text.range(of: #"on http://127\.0\.0\.1:(\d+)"#, options: .regularExpression),
            let port = Int(text[range].split(separator: ":").last ?? "")
        else {
            process.terminate()
            throw NSError(domain: "serve", code: 1, userInfo: [NSLocalizedDescriptionKey: "tandem serve did not start: \(text)"])
        }
        self.port = port
    }

    /// Its standard error so far.
    var log: String { lock.withLock { collected } }

    /// Whether its standard error contains `text` within `seconds`.
    func waitForLog(_ text: String, seconds: Double) -> Bool {
        let deadline = Date(timeIntervalSinceNow: seconds)
        while !log.contains(text), Date() < deadline { usleep(10_000) }
        return log.contains(text)
    }

    /// Whether it exited within `seconds`.
    func waitForExit(seconds: Double) -> Bool {
        let deadline = Date(timeIntervalSinceNow: seconds)
        while process.isRunning, Date() < deadline { usleep(20_000) }
        return !process.isRunning
    }

    func request(_ path: String, body: String? = nil, key: String? = "test-key-of-some-length") async throws -> (Int, String) {
        let (status, body, _) = try await requestWithHeaders(path, body: body, key: key)
        return (status, body)
    }

    func requestWithHeaders(_ path: String, body: String? = nil, key: String? = "test-key-of-some-length") async throws -> (Int, String, [AnyHashable: Any]) {
        try await requestWithHeaders(path, bytes: body.map { Data($0.utf8) }, key: key)
    }

    /// POSTs `bytes` as they are (nil: GETs).
    func requestWithHeaders(_ path: String, bytes: Data?, key: String? = "test-key-of-some-length") async throws -> (Int, String, [AnyHashable: Any]) {
        var request = URLRequest(url: URL(string: "http://127.0.0.1:\(port)\(path)")!)
        request.timeoutInterval = 60
        if let bytes {
            request.httpMethod = "POST"
            request.httpBody = bytes
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        }
        if let key { request.setValue("Bearer \(key)", forHTTPHeaderField: "Authorization") }
        let (data, response) = try await URLSession.shared.data(for: request)
        let http = response as? HTTPURLResponse
        return (http?.statusCode ?? 0, String(decoding: data, as: UTF8.self), http?.allHeaderFields ?? [:])
    }

    /// POSTs `body` over a plain socket and reads the reply to its end (at most `seconds`), calling `onFirstEvent`
    /// once the first Server-Sent Event arrives. Returns the body's events (chunked encoding undone), or nil when
    /// the reply did not end in time.
    func stream(_ path: String, body: String, seconds: Double = 60, onFirstEvent: () -> Void = {}) -> [String]? {
        guard let connection = RawConnection(host: "127.0.0.1", port: UInt16(port)) else { return nil }
        let head = "POST \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n"
        guard connection.send(Array((head + body).utf8)) else { return nil }
        var bytes: [UInt8] = []
        var announced = false
        let deadline = Date(timeIntervalSinceNow: seconds)
        while !Self.ended(bytes), Date() < deadline {
            bytes += connection.receive(upTo: 65536, seconds: 0.5)
            if !announced, String(decoding: bytes, as: UTF8.self).contains("data: ") {
                announced = true
                onFirstEvent()
            }
        }
        guard Self.ended(bytes), let text = Self.dechunked(bytes) else { return nil }
        return text.components(separatedBy: "\n\n").filter { !$0.isEmpty }
    }

    /// Whether a chunked reply is complete (its last, empty chunk arrived).
    private static func ended(_ bytes: [UInt8]) -> Bool { String(decoding: bytes, as: UTF8.self).hasSuffix("\r\n0\r\n\r\n") }

    private static func dechunked(_ bytes: [UInt8]) -> String? {
        let text = String(decoding: bytes, as: UTF8.self)
        guard let headEnd = text.range(of: "\r\n\r\n") else { return nil }
        var rest = Substring(text[headEnd.upperBound...]).utf8[...]
        var body: [UInt8] = []
        while let lineEnd = rest.firstRange(of: "\r\n".utf8) {
            guard let size = Int(String(decoding: rest[..<lineEnd.lowerBound], as: UTF8.self), radix: 16) else { return nil }
            if size == 0 { return String(decoding: body, as: UTF8.self) }
            let start = lineEnd.upperBound
            guard let end = rest.index(start, offsetBy: size, limitedBy: rest.endIndex) else { return nil }
            body += rest[start..<end]
            rest = rest[end...].dropFirst(2)
        }
        return nil
    }
}
