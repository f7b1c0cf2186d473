/// The store's wire protocol: each request and response is a frame of a 4-byte little-endian body length
/// followed by the body. A request body starts with a `StoreCommand` byte, a response body with a
/// `StoreStatus` byte. The first request on a connection must be `hello` carrying the job token.
enum StoreCommand: UInt8 {
    case hello = 1, set, get, wait, add, compareSet, delete, numKeys
}

/// The first byte of a response.
package enum StoreStatus: UInt8 {
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

/// A store request as it travels: the client encodes it, the server decodes it. Decoding is strict (every byte
/// accounted for, keys UTF-8), so what the server acts on is exactly what a client meant.
package enum StoreRequest: Equatable {
    case hello(token: [UInt8])
    case set(key: String, value: [UInt8])
    case get(key: String, timeoutMilliseconds: UInt64)
    case wait(keys: [String], timeoutMilliseconds: UInt64)
    case add(key: String, amount: Int64)
    /// An empty `expected` means "only if absent".
    case compareSet(key: String, expected: [UInt8], desired: [UInt8])
    case delete(key: String)
    case numKeys

    /// The request body (without the frame's length).
    package func encoded() -> [UInt8] {
        var writer = ByteWriter()
        switch self {
        case let .hello(token):
            writer.append(StoreCommand.hello.rawValue)
            writer.append(bytesWithLength: token)
        case let .set(key, value):
            writer.append(StoreCommand.set.rawValue)
            writer.append(string: key)
            writer.append(bytesWithLength: value)
        case let .get(key, milliseconds):
            writer.append(StoreCommand.get.rawValue)
            writer.append(string: key)
            writer.append(milliseconds)
        case let .wait(keys, milliseconds):
            writer.append(StoreCommand.wait.rawValue)
            writer.append(strings: keys)
            writer.append(milliseconds)
        case let .add(key, amount):
            writer.append(StoreCommand.add.rawValue)
            writer.append(string: key)
            writer.append(amount)
        case let .compareSet(key, expected, desired):
            writer.append(StoreCommand.compareSet.rawValue)
            writer.append(string: key)
            writer.append(bytesWithLength: expected)
            writer.append(bytesWithLength: desired)
        case let .delete(key):
            writer.append(StoreCommand.delete.rawValue)
            writer.append(string: key)
        case .numKeys:
            writer.append(StoreCommand.numKeys.rawValue)
        }
        return writer.bytes
    }

    /// - Throws: `ByteReader.Invalid` naming what does not parse (an unknown command, a short field, a key that
    ///   is not UTF-8, trailing bytes).
    package init(decoding body: [UInt8]) throws(ByteReader.Invalid) {
        var reader = ByteReader(body)
        let byte = try reader.read(UInt8.self)
        guard let command = StoreCommand(rawValue: byte) else { throw ByteReader.Invalid(description: "unknown command \(byte)") }
        switch command {
        case .hello:
            self = .hello(token: try reader.readBytesWithLength())
        case .set:
            self = .set(key: try reader.readString(), value: try reader.readBytesWithLength())
        case .get:
            self = .get(key: try reader.readString(), timeoutMilliseconds: try reader.read(UInt64.self))
        case .wait:
            self = .wait(keys: try reader.readStrings(), timeoutMilliseconds: try reader.read(UInt64.self))
        case .add:
            self = .add(key: try reader.readString(), amount: try reader.read(Int64.self))
        case .compareSet:
            self = .compareSet(key: try reader.readString(), expected: try reader.readBytesWithLength(), desired: try reader.readBytesWithLength())
        case .delete:
            self = .delete(key: try reader.readString())
        case .numKeys:
            self = .numKeys
        }
        try reader.expectEnd()
    }
}

/// A store answer as it travels: a `StoreStatus` byte, then the status's body.
package enum StoreAnswer: Equatable {
    /// The request's result (its layout is the request's: see `TCPStore`).
    case ok(body: [UInt8])
    /// The keys still missing when the request's timeout passed.
    case timeout(missing: [String])
    /// The hello carried the wrong token.
    case refused
    /// The request was malformed; the server's words.
    case badRequest(String)

    package func encoded() -> [UInt8] {
        var writer = ByteWriter()
        switch self {
        case let .ok(body):
            return [StoreStatus.ok.rawValue] + body
        case let .timeout(missing):
            writer.append(StoreStatus.timeout.rawValue)
            writer.append(strings: missing)
        case .refused:
            writer.append(StoreStatus.refused.rawValue)
        case let .badRequest(message):
            writer.append(StoreStatus.badRequest.rawValue)
            writer.append(string: message)
        }
        return writer.bytes
    }

    /// - Throws: `ByteReader.Invalid` for an unknown status or a body that does not parse.
    package init(decoding frame: [UInt8]) throws(ByteReader.Invalid) {
        var reader = ByteReader(frame)
        let byte = try reader.read(UInt8.self)
        guard let status = StoreStatus(rawValue: byte) else { throw ByteReader.Invalid(description: "unknown status \(byte)") }
        switch status {
        case .ok:
            self = .ok(body: Array(frame.dropFirst()))
            return
        case .timeout:
            self = .timeout(missing: try reader.readStrings())
        case .refused:
            self = .refused
        case .badRequest:
            self = .badRequest(try reader.readString())
        }
        try reader.expectEnd()
    }
}
