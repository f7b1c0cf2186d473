/// How a `BroadcastQueue` message is described: the 8-byte prefix of a frame on a TCP connection, and the
/// 16-byte header of a ring chunk. Every length read back is checked against what a writer can send, so a
/// corrupt stream or segment becomes an error, not an allocation of its size or a read past the chunk.
package enum QueueFrame {
    /// Bytes before a frame's message: its length (u64, little-endian), or `closedMarker` for the closing frame.
    package static let prefixBytes = 8
    package static let closedMarker = UInt64.max
    /// Largest message a queue carries (the writer refuses larger ones).
    package static let maximumMessageBytes = 1 << 30
    /// Bytes before a chunk's inline message: its length (u64) and whether it overflowed to a frame (u64 0 or 1).
    package static let chunkHeaderBytes = 16

    /// The prefix of a frame carrying `length` bytes, or of the closing frame when nil.
    package static func prefix(length: Int?) -> [UInt8] {
        var writer = ByteWriter()
        writer.append(length.map(UInt64.init) ?? closedMarker)
        return writer.bytes
    }

    /// The message length a prefix announces; nil for the closing frame.
    ///
    /// - Throws: `ByteReader.Invalid` for a prefix of the wrong size or a length over `maximumMessageBytes`.
    package static func length(decodingPrefix prefix: [UInt8]) throws(ByteReader.Invalid) -> Int? {
        var reader = ByteReader(prefix)
        let length = try reader.read(UInt64.self)
        try reader.expectEnd()
        if length == closedMarker { return nil }
        guard length <= UInt64(maximumMessageBytes) else {
            throw ByteReader.Invalid(description: "a frame of \(length) bytes (at most \(maximumMessageBytes))")
        }
        return Int(length)
    }

    /// A chunk's header: the message length and whether the bytes follow as a frame.
    package struct ChunkHeader: Equatable {
        package var length: Int
        package var overflow: Bool

        package func store(to chunk: UnsafeMutableRawPointer) {
            chunk.storeBytes(of: UInt64(length).littleEndian, as: UInt64.self)
            chunk.storeBytes(of: UInt64(overflow ? 1 : 0).littleEndian, toByteOffset: 8, as: UInt64.self)
        }

        /// - Throws: `ByteReader.Invalid` when the header does not describe a message a writer could have put
        ///   there (an inline length over `inlineBytes`, an overflow length over `maximumMessageBytes`, a flag
        ///   other than 0 or 1).
        package init(decoding header: [UInt8], inlineBytes: Int) throws(ByteReader.Invalid) {
            var reader = ByteReader(header)
            let length = try reader.read(UInt64.self)
            let flag = try reader.read(UInt64.self)
            try reader.expectEnd()
            guard flag <= 1 else { throw ByteReader.Invalid(description: "chunk overflow flag \(flag)") }
            let limit = flag == 1 ? maximumMessageBytes : inlineBytes
            guard length <= UInt64(limit) else {
                throw ByteReader.Invalid(description: "a chunk announcing \(length) bytes (at most \(limit) \(flag == 1 ? "in a frame" : "inline"))")
            }
            self.init(length: Int(length), overflow: flag == 1)
        }

        package init(length: Int, overflow: Bool) {
            (self.length, self.overflow) = (length, overflow)
        }
    }
}
