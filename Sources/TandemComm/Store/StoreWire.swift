/// The store's wire protocol: each request and response is a frame of a 4-byte little-endian body length
/// followed by the body. A request body starts with a `StoreCommand` byte, a response body with a
/// `StoreStatus` byte. The first request on a connection must be `hello` carrying the job token.
enum StoreCommand: UInt8 {
    case hello = 1, set, get, wait, add, compareSet, delete, numKeys
}

/// The first byte of a response.
enum StoreStatus: UInt8 {
    case ok = 0
    /// Body: the keys still missing.
    case timeout = 1
    /// The hello carried the wrong token; the server closes the connection.
    case refused = 2
    /// Body: a message; the request was malformed.
    case badRequest = 3
}

enum StoreWire {
    /// Largest frame either side accepts; larger lengths mean a corrupt or foreign stream.
    static let maximumFrameBytes = 256 << 20

    static func sendFrame(_ body: [UInt8], on socket: Socket, deadline: Deadline) throws(SystemCallError) {
        var writer = ByteWriter()
        writer.append(UInt32(body.count))
        try socket.sendAll(writer.bytes + body, deadline: deadline)
    }

    /// Largest hello a server reads from a connection that has not yet shown the token (a command byte, a
    /// length and the token): nothing larger is allocated for an unauthenticated peer.
    static let maximumHelloBytes = 4096

    /// Reads one frame; nil when its declared length exceeds `limit`.
    static func receiveFrame(on socket: Socket, deadline: Deadline, limit: Int = maximumFrameBytes) throws(SystemCallError) -> [UInt8]? {
        var reader = ByteReader(try socket.receive(count: 4, deadline: deadline))
        guard let length = try? reader.read(UInt32.self), Int(length) <= limit else { return nil }
        return try socket.receive(count: Int(length), deadline: deadline)
    }
}
