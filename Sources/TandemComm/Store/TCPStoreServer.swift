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
        var reader = ByteReader(hello)
        guard (try? reader.read(UInt8.self)) == StoreCommand.hello.rawValue,
            let presented = try? reader.readBytesWithLength(), constantTimeEqual(presented, token)
        else {
            Log.warning("store: refused connection from \(peer): missing or wrong job token")
            try? StoreWire.sendFrame([StoreStatus.refused.rawValue], on: socket, deadline: .after(seconds: 1))
            return
        }
        guard (try? StoreWire.sendFrame([StoreStatus.ok.rawValue], on: socket, deadline: .after(seconds: 5))) != nil else { return }
        while true {
            guard let request = try? StoreWire.receiveFrame(on: socket, deadline: idle) else { return }
            let response = handle(request)
            guard (try? StoreWire.sendFrame(response, on: socket, deadline: .after(seconds: 30))) != nil else { return }
        }
    }

    private func handle(_ request: [UInt8]) -> [UInt8] {
        var reader = ByteReader(request)
        do {
            guard let command = StoreCommand(rawValue: try reader.read(UInt8.self)) else {
                return badRequest("unknown command")
            }
            switch command {
            case .hello:
                return badRequest("hello sent twice")
            case .set:
                let key = try reader.readString()
                let value = try reader.readBytesWithLength()
                locked { values[key] = value }
                return [StoreStatus.ok.rawValue]
            case .get:
                let key = try reader.readString()
                let timeoutMilliseconds = try reader.read(UInt64.self)
                guard let value = waitFor([key], milliseconds: timeoutMilliseconds).value else {
                    return timeoutResponse([key])
                }
                var writer = ByteWriter()
                writer.append(StoreStatus.ok.rawValue)
                writer.append(bytesWithLength: value)
                return writer.bytes
            case .wait:
                let count = Int(try reader.read(UInt32.self))
                var keys: [String] = []
                for _ in 0..<count { keys.append(try reader.readString()) }
                let timeoutMilliseconds = try reader.read(UInt64.self)
                let missing = waitFor(keys, milliseconds: timeoutMilliseconds).missing
                return missing.isEmpty ? [StoreStatus.ok.rawValue] : timeoutResponse(missing)
            case .add:
                let key = try reader.readString()
                let amount = try reader.read(Int64.self)
                let result: Int64 = locked {
                    let current = values[key].flatMap { Int64(String(decoding: $0, as: UTF8.self)) } ?? 0
                    let updated = current &+ amount
                    values[key] = Array(String(updated).utf8)
                    return updated
                }
                var writer = ByteWriter()
                writer.append(StoreStatus.ok.rawValue)
                writer.append(result)
                return writer.bytes
            case .compareSet:
                let key = try reader.readString()
                let expected = try reader.readBytesWithLength()
                let desired = try reader.readBytesWithLength()
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
                var writer = ByteWriter()
                writer.append(StoreStatus.ok.rawValue)
                writer.append(bytesWithLength: stored)
                return writer.bytes
            case .delete:
                let key = try reader.readString()
                let existed = locked { values.removeValue(forKey: key) != nil }
                return [StoreStatus.ok.rawValue, existed ? 1 : 0]
            case .numKeys:
                var writer = ByteWriter()
                writer.append(StoreStatus.ok.rawValue)
                writer.append(Int64(locked { values.count }))
                return writer.bytes
            }
        } catch {
            return badRequest("truncated request")
        }
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

    private func timeoutResponse(_ missing: [String]) -> [UInt8] {
        var writer = ByteWriter()
        writer.append(StoreStatus.timeout.rawValue)
        writer.append(UInt32(missing.count))
        for key in missing { writer.append(string: key) }
        return writer.bytes
    }

    private func badRequest(_ message: String) -> [UInt8] {
        var writer = ByteWriter()
        writer.append(StoreStatus.badRequest.rawValue)
        writer.append(string: message)
        return writer.bytes
    }
}

/// Compares two byte strings in time independent of where they differ.
private func constantTimeEqual(_ lhs: [UInt8], _ rhs: [UInt8]) -> Bool {
    guard lhs.count == rhs.count else { return false }
    var difference: UInt8 = 0
    for index in lhs.indices { difference |= lhs[index] ^ rhs[index] }
    return difference == 0
}
