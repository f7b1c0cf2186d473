/// What a rank sends first on each connection it opens to a peer: the job token, the group, its rank and world
/// size, and which connection this is (the liveness one, or which of the data ones). The acceptor answers one byte
/// (`accepted` or `refused`).
///
/// Framed as a 4-byte little-endian length (at most `maximumBytes`) and a body of: magic u64, token (u32 length
/// + bytes), group (u32 length + UTF-8), rank u32, world size u32, stream u8 (0 on the liveness connection), channel u8. Decoding is strict: a body with
/// trailing bytes or a group name that is not UTF-8 is malformed.
package struct PeerHello: Equatable {
    package static let magic: UInt64 = 0x4F4C_4548_4D44_4E54  // "TNDMHELO"
    /// Largest hello body an acceptor reads from a connection that has not shown the token.
    package static let maximumBytes = 1 << 16
    package static let accepted: UInt8 = 1
    package static let refused: UInt8 = 0

    package var token: [UInt8]
    package var group: String
    package var rank: Int
    package var worldSize: Int
    /// Which of the peer's data connections this is (0 for the liveness connection).
    package var stream: Int
    package var channel: TCPMesh.Channel

    /// The length-prefixed frame.
    package func frame() -> [UInt8] {
        var body = ByteWriter()
        body.append(Self.magic)
        body.append(bytesWithLength: token)
        body.append(string: group)
        body.append(UInt32(rank))
        body.append(UInt32(worldSize))
        body.append(UInt8(stream))
        body.append(channel.rawValue)
        var frame = ByteWriter()
        frame.append(UInt32(body.bytes.count))
        return frame.bytes + body.bytes
    }

    /// The body's length from the frame's first four bytes; nil when it exceeds `maximumBytes`.
    package static func bodyLength(_ prefix: [UInt8]) throws(ByteReader.Invalid) -> Int? {
        var reader = ByteReader(prefix)
        let length = Int(try reader.read(UInt32.self))
        try reader.expectEnd()
        return length <= maximumBytes ? length : nil
    }

    /// - Throws: `ByteReader.Invalid` naming the field that does not parse.
    package init(decoding body: [UInt8]) throws(ByteReader.Invalid) {
        var reader = ByteReader(body)
        let magic = try reader.read(UInt64.self)
        guard magic == Self.magic else { throw ByteReader.Invalid(description: "not a Tandem hello (magic \(magic))") }
        token = try reader.readBytesWithLength()
        group = try reader.readString()
        rank = Int(try reader.read(UInt32.self))
        worldSize = Int(try reader.read(UInt32.self))
        stream = Int(try reader.read(UInt8.self))
        let channelByte = try reader.read(UInt8.self)
        guard let channel = TCPMesh.Channel(rawValue: channelByte) else { throw ByteReader.Invalid(description: "unknown channel \(channelByte)") }
        self.channel = channel
        try reader.expectEnd()
    }

    package init(token: [UInt8], group: String, rank: Int, worldSize: Int, stream: Int = 0, channel: TCPMesh.Channel) {
        precondition((0...255).contains(stream), "stream \(stream) does not fit the hello's byte")
        (self.token, self.group, self.rank, self.worldSize, self.stream, self.channel) = (token, group, rank, worldSize, stream, channel)
    }
}
