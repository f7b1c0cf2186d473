#if canImport(Glibc)
import Glibc
private let streamSocketType = Int32(SOCK_STREAM.rawValue)
private let sendFlags = Int32(MSG_NOSIGNAL)
#elseif canImport(Darwin)
import Darwin
private let streamSocketType = SOCK_STREAM
private let sendFlags: Int32 = 0
#endif

/// A TCP socket that owns its descriptor and closes it on `deinit`.
///
/// Descriptors are non-blocking; the helpers here wait with `poll(2)` so that every wait has a deadline.
final class Socket: @unchecked Sendable {
    /// The descriptor; -1 once closed.
    private(set) var descriptor: Int32

    private init(descriptor: Int32) {
        self.descriptor = descriptor
        Posix.ignoreBrokenPipe
    }

    deinit { close() }

    /// Closes the descriptor now (idempotent).
    func close() {
        if descriptor >= 0 {
            _ = posixClose(descriptor)
            descriptor = -1
        }
    }

    /// Shuts down both directions so that a peer blocked on this connection sees EOF at once.
    func shutdownBoth() {
        if descriptor >= 0 { _ = shutdown(descriptor, Int32(SHUT_RDWR)) }
    }

    // MARK: - Creating sockets

    /// Opens a listening socket on `host` (numeric address or name; nil or "" for all interfaces) and `port`
    /// (0 picks a free port).
    static func listen(host: String?, port: UInt16, backlog: Int32 = 1024) throws(SystemCallError) -> Socket {
        let candidates = try resolve(host: host, port: port, passive: true)
        var lastError = SystemCallError(call: "bind(\(host ?? "*"):\(port))", errno: EADDRNOTAVAIL)
        for address in candidates {
            do {
                let socket = try open(family: address.family)
                var one: Int32 = 1
                _ = setsockopt(socket.descriptor, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
                _ = try address.withSockaddr { pointer, length throws(SystemCallError) in
                    try Posix.call("bind(\(address))") { bind(socket.descriptor, pointer, length) }
                }
                try Posix.call("listen(\(address))") { posixListen(socket.descriptor, backlog) }
                return socket
            } catch {
                lastError = error
            }
        }
        throw lastError
    }

    /// Connects to `host:port`, retrying refused or unreachable attempts until `deadline` (the peer may not be
    /// listening yet).
    ///
    /// - Throws: the last `SystemCallError`, whose call names the address tried.
    static func connect(host: String, port: UInt16, deadline: Deadline) throws(SystemCallError) -> Socket {
        var lastError = SystemCallError(call: "connect(\(host):\(port))", errno: ETIMEDOUT)
        var backoffMicroseconds: UInt32 = 1_000
        repeat {
            let candidates: [SocketAddress]
            do {
                candidates = try resolve(host: host, port: port, passive: false)
            } catch {
                lastError = error
                if error.errno != EAI_AGAIN { throw error }
                candidates = []
            }
            for address in candidates {
                do {
                    return try connectOnce(to: address, deadline: deadline)
                } catch {
                    lastError = error
                }
            }
            usleep(backoffMicroseconds)
            backoffMicroseconds = min(backoffMicroseconds * 2, 200_000)
        } while !deadline.hasPassed
        throw lastError
    }

    private static func connectOnce(to address: SocketAddress, deadline: Deadline) throws(SystemCallError) -> Socket {
        let socket = try open(family: address.family)
        let result = address.withSockaddr { pointer, length in posixConnect(socket.descriptor, pointer, length) }
        if result == 0 { return socket }
        guard errno == EINPROGRESS || errno == EINTR else {
            throw SystemCallError(call: "connect(\(address))", errno: errno)
        }
        guard try socket.waitUntil(writable: true, deadline: deadline) else {
            throw SystemCallError(call: "connect(\(address))", errno: ETIMEDOUT)
        }
        var code: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        getsockopt(socket.descriptor, SOL_SOCKET, SO_ERROR, &code, &length)
        if code != 0 { throw SystemCallError(call: "connect(\(address))", errno: code) }
        return socket
    }

    private static func open(family: Int32) throws(SystemCallError) -> Socket {
        let descriptor = try Posix.call("socket") { posixSocket(family, streamSocketType, 0) }
        let opened = Socket(descriptor: descriptor)
        _ = fcntl(descriptor, F_SETFD, FD_CLOEXEC)
        _ = fcntl(descriptor, F_SETFL, fcntl(descriptor, F_GETFL) | O_NONBLOCK)
        #if canImport(Darwin)
        var one: Int32 = 1
        setsockopt(descriptor, SOL_SOCKET, SO_NOSIGPIPE, &one, socklen_t(MemoryLayout<Int32>.size))
        #endif
        return opened
    }

    /// Accepts one connection, waiting until `deadline`; nil when the deadline passes first.
    func accept(deadline: Deadline) throws(SystemCallError) -> (socket: Socket, peer: String)? {
        while true {
            var storage = sockaddr_storage()
            var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let accepted = try Posix.transfer("accept", alsoRetrying: ECONNABORTED) {
                Int(withUnsafeMutablePointer(to: &storage) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { posixAccept(descriptor, $0, &length) }
                })
            }
            if let accepted {
                let descriptor = Int32(accepted)
                let socket = Socket(descriptor: descriptor)
                _ = fcntl(descriptor, F_SETFD, FD_CLOEXEC)
                _ = fcntl(descriptor, F_SETFL, fcntl(descriptor, F_GETFL) | O_NONBLOCK)
                return (socket, SocketAddress(storage: storage).description)
            }
            guard try waitUntil(writable: false, deadline: deadline) else { return nil }
        }
    }

    // MARK: - Options

    /// Disables Nagle's algorithm and asks for `bufferBytes` socket buffers in both directions.
    func configureForData(bufferBytes: Int32) {
        var one: Int32 = 1
        _ = setsockopt(descriptor, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        var size = bufferBytes
        _ = setsockopt(descriptor, SOL_SOCKET, SO_SNDBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        _ = setsockopt(descriptor, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
    }

    /// Declares the peer lost (the socket fails with ETIMEDOUT) once it has answered nothing for about
    /// `seconds`: keep-alive probes every second after one idle second, and the same bound on data left
    /// unacknowledged (`TCP_USER_TIMEOUT`). Only for connections whose reader always reads (a receiver that is
    /// merely busy could otherwise be cut off once its window stays shut that long).
    func enableDeadPeerDetection(seconds: Int32) {
        var one: Int32 = 1
        _ = setsockopt(descriptor, SOL_SOCKET, SO_KEEPALIVE, &one, socklen_t(MemoryLayout<Int32>.size))
        #if canImport(Glibc)
        var idle: Int32 = 1, interval: Int32 = 1, count = max(seconds - 1, 1), milliseconds = UInt32(seconds) * 1000
        _ = setsockopt(descriptor, Int32(IPPROTO_TCP), TCP_KEEPIDLE, &idle, socklen_t(MemoryLayout<Int32>.size))
        _ = setsockopt(descriptor, Int32(IPPROTO_TCP), TCP_KEEPINTVL, &interval, socklen_t(MemoryLayout<Int32>.size))
        _ = setsockopt(descriptor, Int32(IPPROTO_TCP), TCP_KEEPCNT, &count, socklen_t(MemoryLayout<Int32>.size))
        _ = setsockopt(descriptor, Int32(IPPROTO_TCP), TCP_USER_TIMEOUT, &milliseconds, socklen_t(MemoryLayout<UInt32>.size))
        #endif
    }

    /// The local address the socket is bound to.
    var localAddress: SocketAddress {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
        }
        return SocketAddress(storage: storage)
    }

    // MARK: - Blocking-style I/O with deadlines

    /// Waits until the socket is readable (or writable); false when `deadline` passes first.
    func waitUntil(writable: Bool, deadline: Deadline) throws(SystemCallError) -> Bool {
        var entries = [pollfd(fd: descriptor, events: Int16(writable ? POLLOUT : POLLIN), revents: 0)]
        return try Posix.poll(&entries) { deadline.pollTimeout() } > 0
    }

    /// Sends all `count` bytes, or throws. `ETIMEDOUT` when `deadline` passes first.
    func sendAll(_ bytes: UnsafeRawPointer, count: Int, deadline: Deadline) throws(SystemCallError) {
        var offset = 0
        while offset < count {
            if let sent = try Posix.transfer("send", { send(descriptor, bytes + offset, count - offset, sendFlags) }) {
                offset += sent
                continue
            }
            guard try waitUntil(writable: true, deadline: deadline) else {
                throw SystemCallError(call: "send", errno: ETIMEDOUT)
            }
        }
    }

    /// Receives exactly `count` bytes, or throws: `ECONNRESET` for EOF, `ETIMEDOUT` when `deadline` passes.
    func receiveExactly(_ bytes: UnsafeMutableRawPointer, count: Int, deadline: Deadline) throws(SystemCallError) {
        var offset = 0
        while offset < count {
            if let received = try Posix.transfer("recv", { recv(descriptor, bytes + offset, count - offset, 0) }) {
                if received == 0 { throw SystemCallError(call: "recv (connection closed by peer)", errno: ECONNRESET) }
                offset += received
                continue
            }
            guard try waitUntil(writable: false, deadline: deadline) else {
                throw SystemCallError(call: "recv", errno: ETIMEDOUT)
            }
        }
    }

    /// Sends a byte array whole.
    func sendAll(_ bytes: [UInt8], deadline: Deadline) throws(SystemCallError) {
        var failure: SystemCallError?
        bytes.withUnsafeBytes { buffer in
            guard let base = buffer.baseAddress else { return }
            do throws(SystemCallError) { try sendAll(base, count: buffer.count, deadline: deadline) } catch { failure = error }
        }
        if let failure { throw failure }
    }

    /// Receives exactly `count` bytes into a new array.
    func receive(count: Int, deadline: Deadline) throws(SystemCallError) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        var failure: SystemCallError?
        bytes.withUnsafeMutableBytes { buffer in
            guard let base = buffer.baseAddress else { return }
            do throws(SystemCallError) { try receiveExactly(base, count: count, deadline: deadline) } catch { failure = error }
        }
        if let failure { throw failure }
        return bytes
    }
}

// Module-level aliases: inside `Socket` the unqualified names resolve to its own methods.
@inline(__always) private func posixSocket(_ family: Int32, _ type: Int32, _ proto: Int32) -> Int32 { socket(family, type, proto) }
@inline(__always) private func posixClose(_ fd: Int32) -> Int32 { close(fd) }
@inline(__always) private func posixListen(_ fd: Int32, _ backlog: Int32) -> Int32 { listen(fd, backlog) }
@inline(__always) private func posixAccept(_ fd: Int32, _ address: UnsafeMutablePointer<sockaddr>, _ length: UnsafeMutablePointer<socklen_t>) -> Int32 {
    accept(fd, address, length)
}
@inline(__always) private func posixConnect(_ fd: Int32, _ address: UnsafePointer<sockaddr>, _ length: socklen_t) -> Int32 {
    connect(fd, address, length)
}
