import Foundation

/// A bare TCP connection a test drives by hand (a stranger at a store or peer port): no hello, no token.
public final class RawConnection {
    /// The socket's descriptor; closed on deinit.
    public let descriptor: Int32

    /// Connects to `host` (an IPv4 address) on `port`, from `source` (an IPv4 address of this host, such as any
    /// 127.x.y.z, so that each connection has an address of its own) when given; nil when the connection fails.
    public init?(host: String, port: UInt16, from source: String? = nil) {
        descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        let descriptor = descriptor
        let bound = source.map { Self.withAddress($0, port: 0) { bind(descriptor, $0, $1) } } ?? 0
        guard bound == 0, Self.withAddress(host, port: port, { connect(descriptor, $0, $1) }) == 0 else {
            close(descriptor)
            return nil
        }
    }

    /// Calls `body` with `host:port` (IPv4) as a `sockaddr` and its length.
    static func withAddress(_ host: String, port: UInt16, _ body: (UnsafePointer<sockaddr>, socklen_t) -> Int32) -> Int32 {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = inet_addr(host)
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
    }

    deinit { close(descriptor) }

    /// Sends `bytes` (never raising SIGPIPE on a connection the other side closed); whether all were sent.
    @discardableResult
    public func send(_ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { Glibc.send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) } == bytes.count
    }

    /// The connection's own port (what the other side logs as this client's address).
    public var localPort: UInt16 { Self.boundPort(descriptor) }

    /// The local port `descriptor` is bound to.
    static func boundPort(_ descriptor: Int32) -> UInt16 {
        var address = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
        }
        return UInt16(bigEndian: address.sin_port)
    }

    /// Up to `count` bytes, waiting at most `seconds` for the first; empty at EOF or when nothing came.
    public func receive(upTo count: Int, seconds: Double) -> [UInt8] {
        var entry = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
        guard poll(&entry, 1, Int32(seconds * 1000)) > 0 else { return [] }
        var buffer = [UInt8](repeating: 0, count: count)
        let received = buffer.withUnsafeMutableBytes { Glibc.recv(descriptor, $0.baseAddress, count, 0) }
        return received > 0 ? Array(buffer[0..<received]) : []
    }
}

/// A socket listening on 127.0.0.1 that accepts nothing: a port some other program holds.
public final class RawListener {
    public let descriptor: Int32
    public let port: Int

    /// Listens on a free port; nil when the socket cannot be bound.
    public init?() {
        descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        let descriptor = descriptor
        guard RawConnection.withAddress("127.0.0.1", port: 0, { bind(descriptor, $0, $1) }) == 0, listen(descriptor, 4) == 0 else {
            close(descriptor)
            return nil
        }
        port = Int(RawConnection.boundPort(descriptor))
    }

    deinit { close(descriptor) }
}
