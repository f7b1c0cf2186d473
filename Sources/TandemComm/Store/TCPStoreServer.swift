import Foundation

/// The server side of the TCP store: holds the keys and serves any number of clients, one thread each.
///
/// Every connection must open with a `hello` carrying the job token; a connection with another token is
/// answered `refused`, logged with its address, and closed.
public final class TCPStoreServer: @unchecked Sendable {
    /// The address the server listens on (`host:port`).
    public let address: String
    /// The port, useful when started with port 0.
    public let port: UInt16

    private let token: [UInt8]
    private let listener: Socket
    private let state = NSCondition()
    private var values: [String: [UInt8]] = [:]
    private var clients: [ObjectIdentifier: Socket] = [:]
    /// Connections that have not yet sent a valid hello.
    private var unauthenticated = 0
    private var isStopped = false
    private var acceptThread: JoinableThread?

    /// Starts listening on `host:port` (port 0 picks a free one).
    ///
    /// - Parameters:
    ///   - host: address or name to bind; nil for all interfaces.
    ///   - port: TCP port, 0 for any free port.
    ///   - token: the job secret clients must present.
    /// - Throws: `StoreError.connection` when the address cannot be bound.
    public init(host: String? = nil, port: UInt16, token: String) throws(StoreError) {
        do {
            listener = try Socket.listen(host: host, port: port)
        } catch {
            throw .cannotServe(address: "\(host ?? "*"):\(port)", underlying: error)
        }
        self.port = listener.localAddress.port
        self.address = "\(host ?? "*"):\(self.port)"
        self.token = Array(token.utf8)
        acceptThread = JoinableThread(name: "tandem-store-accept") { [self] in acceptLoop() }
    }

    deinit { stop() }

    /// Stops serving: closes the listener and every client connection and wakes blocked requests.
    public func stop() {
        state.lock()
        if isStopped { state.unlock(); return }
        isStopped = true
        let open = Array(clients.values)
        state.broadcast()
        state.unlock()
        listener.shutdownBoth()
        for client in open { client.shutdownBoth() }
        acceptThread?.join()
    }

    private var stopped: Bool {
        state.lock()
        defer { state.unlock() }
        return isStopped
    }

    /// At most this many connections may be waiting to say hello; more are closed at once (each is logged).
    static let maximumUnauthenticated = 32
    /// Seconds a new connection has to send its hello.
    static let helloSeconds = 5.0

    private func acceptLoop() {
        while !stopped {
            guard let accepted = try? listener.accept(deadline: .after(seconds: 0.2)) else { continue }
            state.lock()
            guard unauthenticated < Self.maximumUnauthenticated else {
                state.unlock()
                Log.warning("store: refused connection from \(accepted.peer): \(Self.maximumUnauthenticated) connections are already waiting to say hello")
                accepted.socket.close()
                continue
            }
            unauthenticated += 1
            clients[ObjectIdentifier(accepted.socket)] = accepted.socket
            state.unlock()
            _ = JoinableThread(name: "tandem-store-client", stackBytes: 256 << 10) { [self] in
                serve(accepted.socket, peer: accepted.peer)
                state.lock()
                clients[ObjectIdentifier(accepted.socket)] = nil
                state.unlock()
                accepted.socket.close()
            }
        }
    }

    private func serve(_ socket: Socket, peer: String) {
        let idle = Deadline(nanoseconds: .max)
        // Before the token is shown: a small frame, a short deadline, and a place among the few allowed.
        let hello = try? StoreWire.receiveFrame(on: socket, deadline: .after(seconds: Self.helloSeconds), limit: StoreWire.maximumHelloBytes)
        state.lock()
        unauthenticated -= 1
        state.unlock()
        guard let hello = hello else {
            Log.warning("store: dropped connection from \(peer) that sent no hello of at most \(StoreWire.maximumHelloBytes) bytes within \(Self.helloSeconds) s")
            return
        }
        guard case let .hello(presented)? = try? StoreRequest(decoding: hello), constantTimeEqual(presented, token) else {
            Log.warning("store: refused connection from \(peer): missing or wrong job token")
            try? StoreWire.sendFrame(StoreAnswer.refused.encoded(), on: socket, deadline: .after(seconds: 1))
            return
        }
        guard (try? StoreWire.sendFrame(StoreAnswer.ok(body: []).encoded(), on: socket, deadline: .after(seconds: 5))) != nil else { return }
        while true {
            guard let frame = try? StoreWire.receiveFrame(on: socket, deadline: idle) else { return }
            let answer: StoreAnswer
            do {
                answer = handle(try StoreRequest(decoding: frame))
            } catch {
                answer = .badRequest("malformed request: \(error)")
            }
            guard (try? StoreWire.sendFrame(answer.encoded(), on: socket, deadline: .after(seconds: 30))) != nil else { return }
        }
    }

    private func handle(_ request: StoreRequest) -> StoreAnswer {
        var writer = ByteWriter()
        switch request {
        case .hello:
            return .badRequest("hello sent twice")
        case let .set(key, value):
            locked { values[key] = value }
        case let .get(key, milliseconds):
            guard let value = waitFor([key], milliseconds: milliseconds).value else { return .timeout(missing: [key]) }
            writer.append(bytesWithLength: value)
        case let .wait(keys, milliseconds):
            let missing = waitFor(keys, milliseconds: milliseconds).missing
            if !missing.isEmpty { return .timeout(missing: missing) }
        case let .add(key, amount):
            let result: Int64 = locked {
                let current = values[key].flatMap { Int64(String(decoding: $0, as: UTF8.self)) } ?? 0
                let updated = current &+ amount
                values[key] = Array(String(updated).utf8)
                return updated
            }
            writer.append(result)
        case let .compareSet(key, expected, desired):
            let stored: [UInt8] = locked {
                switch values[key] {
                case nil where expected.isEmpty, expected?:
                    values[key] = desired
                    return desired
                case nil:
                    return expected
                case let current?:
                    return current
                }
            }
            writer.append(bytesWithLength: stored)
        case let .delete(key):
            let existed = locked { values.removeValue(forKey: key) != nil }
            writer.append(UInt8(existed ? 1 : 0))
        case .numKeys:
            writer.append(Int64(locked { values.count }))
        }
        return .ok(body: writer.bytes)
    }

    /// Waits until all `keys` exist, the timeout passes, or the server stops.
    private func waitFor(_ keys: [String], milliseconds: UInt64) -> (value: [UInt8]?, missing: [String]) {
        let limit = Date(timeIntervalSinceNow: Double(milliseconds) / 1000)
        state.lock()
        defer { state.unlock() }
        while true {
            let missing = keys.filter { values[$0] == nil }
            if missing.isEmpty { return (keys.first.flatMap { values[$0] }, []) }
            if isStopped || !state.wait(until: limit) {
                return (nil, keys.filter { values[$0] == nil })
            }
        }
    }

    private func locked<Result>(_ body: () -> Result) -> Result {
        state.lock()
        defer {
            state.broadcast()
            state.unlock()
        }
        return body()
    }
}
