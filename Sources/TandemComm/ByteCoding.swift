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

    /// A count (u32) and that many strings.
    mutating func append(strings values: [String]) {
        append(UInt32(values.count))
        for value in values { append(string: value) }
    }
}

/// Reads what `ByteWriter` wrote; every read checks the remaining length and throws `Invalid`.
package struct ByteReader {
    /// The input does not hold what was read: it ended before a field did, or a string is not UTF-8.
    package struct Invalid: Error, CustomStringConvertible {
        package let description: String
    }

    private let bytes: [UInt8]
    private var offset = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    /// Whether every byte was consumed.
    var isAtEnd: Bool { offset == bytes.count }

    /// Bytes not yet read.
    var remaining: Int { bytes.count - offset }

    mutating func read<Integer: FixedWidthInteger>(_: Integer.Type) throws(Invalid) -> Integer {
        let size = MemoryLayout<Integer>.size
        guard bytes.count - offset >= size else { throw Invalid(description: "ends inside a \(size)-byte integer at byte \(offset)") }
        var value = Integer.zero
        withUnsafeMutableBytes(of: &value) { destination in
            bytes.withUnsafeBytes { source in
                destination.copyMemory(from: UnsafeRawBufferPointer(rebasing: source[offset..<offset + size]))
            }
        }
        offset += size
        return Integer(littleEndian: value)
    }

    mutating func readBytesWithLength() throws(Invalid) -> [UInt8] {
        let length = Int(try read(UInt32.self))
        guard bytes.count - offset >= length else {
            throw Invalid(description: "a field of \(length) bytes at byte \(offset) runs past the end (\(bytes.count) bytes)")
        }
        defer { offset += length }
        return Array(bytes[offset..<offset + length])
    }

    /// A length-prefixed string; invalid UTF-8 is an error (never replaced, so two keys cannot become one).
    mutating func readString() throws(Invalid) -> String {
        let start = offset
        guard let text = String(validating: try readBytesWithLength(), as: UTF8.self) else {
            throw Invalid(description: "the string at byte \(start) is not UTF-8")
        }
        return text
    }

    /// What `ByteWriter.append(strings:)` wrote. A count the remaining bytes cannot hold (each string takes at
    /// least its 4-byte length) is refused before any string is read.
    mutating func readStrings() throws(Invalid) -> [String] {
        let count = Int(try read(UInt32.self))
        guard count <= remaining / 4 else { throw Invalid(description: "\(count) strings in the last \(remaining) bytes") }
        var values: [String] = []
        for _ in 0..<count { values.append(try readString()) }
        return values
    }

    /// Throws unless every byte was read: a message with trailing bytes is not the message its prefix is.
    func expectEnd() throws(Invalid) {
        guard isAtEnd else { throw Invalid(description: "\(remaining) unexpected bytes after byte \(offset)") }
    }
}

/// Compares two byte strings in time independent of where they differ.
package func constantTimeEqual(_ lhs: [UInt8], _ rhs: [UInt8]) -> Bool {
    guard lhs.count == rhs.count else { return false }
    var difference: UInt8 = 0
    for index in lhs.indices { difference |= lhs[index] ^ rhs[index] }
    return difference == 0
}
