/// GPT-2's reversible byte ↔ character map, used by byte-level BPE: every byte becomes a printable character
/// (printable ASCII and Latin-1 map to themselves, the other 68 bytes to U+0100 …), so any byte string is a
/// string of vocabulary symbols and no byte is ever unknown.
enum ByteLevel {
    /// The character standing for each byte.
    static let scalarForByte: [Unicode.Scalar] = {
        let printable = Array(0x21...0x7E) + Array(0xA1...0xAC) + Array(0xAE...0xFF)
        var table = [Unicode.Scalar](repeating: " ", count: 256)
        for byte in printable { table[byte] = Unicode.Scalar(UInt32(byte))! }
        var next: UInt32 = 256
        for byte in 0..<256 where !printable.contains(byte) {
            table[byte] = Unicode.Scalar(next)!
            next += 1
        }
        return table
    }()

    /// The inverse of `scalarForByte`.
    static let byteForScalar: [Unicode.Scalar: UInt8] = {
        var map: [Unicode.Scalar: UInt8] = [:]
        for (byte, scalar) in scalarForByte.enumerated() { map[scalar] = UInt8(byte) }
        return map
    }()

    /// `text`'s UTF-8 bytes as byte-level characters.
    static func encode(_ text: Substring.UnicodeScalarView) -> String {
        var result = String.UnicodeScalarView()
        for byte in String(text).utf8 { result.append(scalarForByte[Int(byte)]) }
        return String(result)
    }

    /// The bytes a vocabulary token stands for: its characters mapped back through `byteForScalar`, or — as the
    /// `tokenizers` ByteLevel decoder does for a token with a character outside the map (an added token) — its
    /// own UTF-8 bytes.
    static func decode(_ token: String) -> [UInt8] {
        var bytes: [UInt8] = []
        for scalar in token.unicodeScalars {
            guard let byte = byteForScalar[scalar] else { return Array(token.utf8) }
            bytes.append(byte)
        }
        return bytes
    }
}
