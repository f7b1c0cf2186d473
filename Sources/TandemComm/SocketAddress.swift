#if canImport(Glibc)
import Glibc
private let streamSocketType = Int32(SOCK_STREAM.rawValue)
#elseif canImport(Darwin)
import Darwin
private let streamSocketType = SOCK_STREAM
#endif

/// An IPv4 or IPv6 socket address.
struct SocketAddress: CustomStringConvertible, Sendable {
    private let storage: sockaddr_storage

    init(storage: sockaddr_storage) { self.storage = storage }

    /// `AF_INET` or `AF_INET6`.
    var family: Int32 { Int32(storage.ss_family) }

    /// The numeric host, without brackets.
    var host: String {
        var buffer = [CChar](repeating: 0, count: Int(NI_MAXHOST))
        var copy = storage
        let length = socklen_t(family == AF_INET6 ? MemoryLayout<sockaddr_in6>.size : MemoryLayout<sockaddr_in>.size)
        let status = withUnsafePointer(to: &copy) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                getnameinfo($0, length, &buffer, socklen_t(buffer.count), nil, 0, NI_NUMERICHOST)
            }
        }
        return status == 0 ? String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) : "?"
    }

    /// The port in host byte order.
    var port: UInt16 {
        var copy = storage
        return withUnsafePointer(to: &copy) { pointer in
            if family == AF_INET6 {
                return pointer.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { UInt16(bigEndian: $0.pointee.sin6_port) }
            }
            return pointer.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { UInt16(bigEndian: $0.pointee.sin_port) }
        }
    }

    /// `host:port`, with brackets around an IPv6 host.
    var description: String {
        family == AF_INET6 ? "[\(host)]:\(port)" : "\(host):\(port)"
    }

    /// Calls `body` with the address as a `sockaddr` pointer and its length.
    func withSockaddr<Result, Failure: Error>(
        _ body: (UnsafePointer<sockaddr>, socklen_t) throws(Failure) -> Result
    ) throws(Failure) -> Result {
        var copy = storage
        let length = socklen_t(family == AF_INET6 ? MemoryLayout<sockaddr_in6>.size : MemoryLayout<sockaddr_in>.size)
        return try withUnsafePointer(to: &copy) { (pointer) throws(Failure) -> Result in
            let address = UnsafeRawPointer(pointer).assumingMemoryBound(to: sockaddr.self)
            return try body(address, length)
        }
    }
}

/// Resolves `host` (a name or a numeric address; nil or "" means any address when `passive`) to TCP
/// addresses, IPv4 first.
///
/// - Throws: `SystemCallError` whose call names the host, with the `getaddrinfo` code as errno.
func resolve(host: String?, port: UInt16, passive: Bool) throws(SystemCallError) -> [SocketAddress] {
    var hints = addrinfo()
    hints.ai_socktype = streamSocketType
    hints.ai_family = AF_UNSPEC
    hints.ai_flags = passive ? AI_PASSIVE : 0
    var list: UnsafeMutablePointer<addrinfo>?
    let name = (host?.isEmpty ?? true) ? nil : host
    let status = getaddrinfo(name, String(port), &hints, &list)
    guard status == 0, let first = list else {
        throw SystemCallError(call: "looking up \(host ?? "*")", errno: status, reason: String(cString: gai_strerror(status)))
    }
    defer { freeaddrinfo(list) }
    var results: [SocketAddress] = []
    var cursor: UnsafeMutablePointer<addrinfo>? = first
    while let entry = cursor {
        if let address = entry.pointee.ai_addr, entry.pointee.ai_family == AF_INET || entry.pointee.ai_family == AF_INET6 {
            var storage = sockaddr_storage()
            withUnsafeMutableBytes(of: &storage) { destination in
                destination.copyMemory(from: UnsafeRawBufferPointer(start: address, count: Int(entry.pointee.ai_addrlen)))
            }
            results.append(SocketAddress(storage: storage))
        }
        cursor = entry.pointee.ai_next
    }
    return results.sorted { $0.family == AF_INET && $1.family != AF_INET }
}

/// The first IPv4 (else IPv6) address of network interface `name`, e.g. "eth0".
///
/// - Throws: `ConfigError.invalidValue` naming `TANDEM_SOCKET_IFNAME` and the interfaces that exist.
func interfaceAddress(named name: String) throws(ConfigError) -> String {
    var list: UnsafeMutablePointer<ifaddrs>?
    guard getifaddrs(&list) == 0, let first = list else {
        throw .invalidValue(name: TandemEnvironment.socketInterface.name, value: name, expected: "an interface (getifaddrs failed)")
    }
    defer { freeifaddrs(list) }
    var found: [SocketAddress] = []
    var names: Set<String> = []
    var cursor: UnsafeMutablePointer<ifaddrs>? = first
    while let entry = cursor {
        cursor = entry.pointee.ifa_next
        let interface = String(cString: entry.pointee.ifa_name)
        guard let address = entry.pointee.ifa_addr else { continue }
        let family = Int32(address.pointee.sa_family)
        guard family == AF_INET || family == AF_INET6 else { continue }
        names.insert(interface)
        guard interface == name else { continue }
        var storage = sockaddr_storage()
        let length = family == AF_INET6 ? MemoryLayout<sockaddr_in6>.size : MemoryLayout<sockaddr_in>.size
        withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: UnsafeRawBufferPointer(start: address, count: length)) }
        found.append(SocketAddress(storage: storage))
    }
    if let address = found.first(where: { $0.family == AF_INET }) ?? found.first { return address.host }
    throw .invalidValue(
        name: TandemEnvironment.socketInterface.name, value: name,
        expected: "an interface with an IP address (have: \(names.sorted().joined(separator: ", ")))")
}
