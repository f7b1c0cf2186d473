/// Appends little-endian integers and length-prefixed byte strings to a buffer.
struct ByteWriter {
    private(set) var bytes: [UInt8] = []

    mutating func append<Integer: FixedWidthInteger>(_ value: Integer) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    mutating func append(bytesWithLength value: [UInt8]) {
        append(UInt32(value.count))
        bytes.append(contentsOf: value)
    }

    mutating func append(string value: String) {
        append(bytesWithLength: Array(value.utf8))
    }
}

/// Reads what `ByteWriter` wrote; every read checks the remaining length and throws `truncated`.
struct ByteReader {
    /// The input ended before a field did.
    struct Truncated: Error {}

    private let bytes: [UInt8]
    private var offset = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    /// Whether every byte was consumed.
    var isAtEnd: Bool { offset == bytes.count }

    mutating func read<Integer: FixedWidthInteger>(_: Integer.Type) throws(Truncated) -> Integer {
        let size = MemoryLayout<Integer>.size
        guard bytes.count - offset >= size else { throw Truncated() }
        var value = Integer.zero
        withUnsafeMutableBytes(of: &value) { destination in
            bytes.withUnsafeBytes { source in
                destination.copyMemory(from: UnsafeRawBufferPointer(rebasing: source[offset..<offset + size]))
            }
        }
        offset += size
        return Integer(littleEndian: value)
    }

    mutating func readBytesWithLength() throws(Truncated) -> [UInt8] {
        let length = Int(try read(UInt32.self))
        guard bytes.count - offset >= length else { throw Truncated() }
        defer { offset += length }
        return Array(bytes[offset..<offset + length])
    }

    mutating func readString() throws(Truncated) -> String {
        String(decoding: try readBytesWithLength(), as: UTF8.self)
    }
}
