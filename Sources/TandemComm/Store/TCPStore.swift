import Synchronization

/// A client of a `TCPStoreServer`; optionally hosts the server itself (as torch's `TCPStore(is_master=True)`).
///
/// One request is in flight at a time per client; requests from several threads queue on a lock.
public final class TCPStore: Store {
    /// `host:port` of the server.
    public let address: String
    /// The server this store hosts, when created with `isServer: true`.
    public let server: TCPStoreServer?

    private let connection: Mutex<Socket>
    /// Extra time a client waits beyond the server-side timeout for the answer to arrive.
    private static let answerMargin = 10.0

    /// Connects to the store at `host:port`, starting the server first when `isServer` is true.
    ///
    /// - Parameters:
    ///   - host: the server's address or name; with `isServer`, the address the server binds (0.0.0.0 or :: for
    ///     every interface).
    ///   - port: the server's port; with `isServer` 0 picks a free one (see `server?.port`).
    ///   - isServer: host the server in this process.
    ///   - token: the job secret.
    ///   - timeout: how long to keep trying to reach the server, in seconds.
    /// - Throws: `StoreError.connection` naming the address tried, or `.refused` for a token mismatch.
    public init(host: String, port: UInt16, isServer: Bool = false, token: String, timeout: Double) throws(StoreError) {
        // The server listens on the address it was given (0.0.0.0 or :: for every interface), as torch's would not.
        let hosted = isServer ? try TCPStoreServer(host: host, port: port, token: token) : nil
        server = hosted
        let connectPort = hosted?.port ?? port
        address = "\(host):\(connectPort)"
        let deadline = Deadline.after(seconds: timeout)
        let socket: Socket
        do {
            socket = try Socket.connect(host: host, port: connectPort, deadline: deadline)
            try StoreWire.sendFrame(StoreRequest.hello(token: Array(token.utf8)).encoded(), on: socket, deadline: deadline)
        } catch {
            hosted?.stop()
            throw .connection(address: "\(host):\(connectPort)", underlying: error)
        }
        let answer: [UInt8]?
        do {
            answer = try StoreWire.receiveFrame(on: socket, deadline: deadline)
        } catch {
            hosted?.stop()
            // A server that refuses the token closes right after saying so; a reset here is that refusal.
            throw .connection(address: address, underlying: error)
        }
        let decoded = answer.flatMap { try? StoreAnswer(decoding: $0) }
        guard decoded == .ok(body: []) else {
            hosted?.stop()
            if decoded == .refused { throw .refused(address: address) }
            throw .protocolViolation(address: address, detail: "unexpected answer to hello (not a Tandem store?)")
        }
        connection = Mutex(socket)
    }

    /// The local address of the connection to the store: the interface that routes to the server.
    var localHost: String {
        connection.withLock { $0.localAddress.host }
    }

    public func set(_ key: String, _ value: [UInt8]) throws(StoreError) {
        let body = try request(.set(key: key, value: value), waitingFor: [key], timeout: 0)
        try decode(body) { (_: inout ByteReader) throws(ByteReader.Invalid) in }
    }

    public func get(_ key: String, timeout: Double) throws(StoreError) -> [UInt8] {
        let body = try request(.get(key: key, timeoutMilliseconds: milliseconds(timeout)), waitingFor: [key], timeout: timeout)
        return try decode(body) { (reader: inout ByteReader) throws(ByteReader.Invalid) in try reader.readBytesWithLength() }
    }

    public func wait(_ keys: [String], timeout: Double) throws(StoreError) {
        let body = try request(.wait(keys: keys, timeoutMilliseconds: milliseconds(timeout)), waitingFor: keys, timeout: timeout)
        try decode(body) { (_: inout ByteReader) throws(ByteReader.Invalid) in }
    }

    public func add(_ key: String, _ amount: Int64) throws(StoreError) -> Int64 {
        let body = try request(.add(key: key, amount: amount), waitingFor: [key], timeout: 0)
        return try decode(body) { (reader: inout ByteReader) throws(ByteReader.Invalid) in try reader.read(Int64.self) }
    }

    public func compareSet(_ key: String, expected: [UInt8], desired: [UInt8]) throws(StoreError) -> [UInt8] {
        let body = try request(.compareSet(key: key, expected: expected, desired: desired), waitingFor: [key], timeout: 0)
        return try decode(body) { (reader: inout ByteReader) throws(ByteReader.Invalid) in try reader.readBytesWithLength() }
    }

    public func delete(_ key: String) throws(StoreError) -> Bool {
        let body = try request(.delete(key: key), waitingFor: [key], timeout: 0)
        return try decode(body) { (reader: inout ByteReader) throws(ByteReader.Invalid) in try reader.read(UInt8.self) } == 1
    }

    public func numKeys() throws(StoreError) -> Int {
        let body = try request(.numKeys, waitingFor: [], timeout: 0)
        return Int(try decode(body) { (reader: inout ByteReader) throws(ByteReader.Invalid) in try reader.read(Int64.self) })
    }

    /// Closes the connection and stops the hosted server, if any.
    public func close() {
        connection.withLock { $0.shutdownBoth() }
        server?.stop()
    }

    deinit { server?.stop() }

    // MARK: - Plumbing

    private func milliseconds(_ seconds: Double) -> UInt64 {
        guard seconds.isFinite, seconds > 0 else { return 0 }
        return UInt64(min(seconds, 1e9) * 1000)
    }

    /// Sends `request`; returns the body of its `ok` answer.
    private func request(_ request: StoreRequest, waitingFor keys: [String], timeout: Double) throws(StoreError) -> [UInt8] {
        for key in keys where key.utf8.count > 1 << 16 {
            throw .invalidArgument("key of \(key.utf8.count) bytes exceeds 65536")
        }
        let body = request.encoded()
        guard body.count <= StoreWire.maximumFrameBytes else {
            throw .invalidArgument("request of \(body.count) bytes exceeds \(StoreWire.maximumFrameBytes)")
        }
        let deadline = Deadline.after(seconds: max(timeout, 0) + Self.answerMargin)
        let address = self.address
        let frame: [UInt8]? = try connection.withLock { (socket) throws(StoreError) -> [UInt8]? in
            do throws(SystemCallError) {
                try StoreWire.sendFrame(body, on: socket, deadline: deadline)
                return try StoreWire.receiveFrame(on: socket, deadline: deadline)
            } catch {
                throw .connection(address: address, underlying: error)
            }
        }
        guard let frame else { throw .protocolViolation(address: address, detail: "an answer longer than \(StoreWire.maximumFrameBytes) bytes") }
        let answer: StoreAnswer
        do {
            answer = try StoreAnswer(decoding: frame)
        } catch {
            throw .protocolViolation(address: address, detail: "malformed answer: \(error)")
        }
        switch answer {
        case let .ok(body):
            return body
        case let .timeout(missing):
            throw .timeout(keys: missing, seconds: timeout)
        case .refused:
            throw .refused(address: address)
        case let .badRequest(message):
            throw .protocolViolation(address: address, detail: message)
        }
    }

    /// Reads an `ok` answer's whole body with `read`.
    private func decode<Value>(_ body: [UInt8], _ read: (inout ByteReader) throws(ByteReader.Invalid) -> Value) throws(StoreError) -> Value {
        var reader = ByteReader(body)
        do {
            let value = try read(&reader)
            try reader.expectEnd()
            return value
        } catch {
            throw .protocolViolation(address: address, detail: "malformed answer: \(error)")
        }
    }
}
