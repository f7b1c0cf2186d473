/// The two messages a liveness connection carries (see `LivenessMonitor`).
///
/// Layout: a type byte; `goodbye` is that byte alone, `abort` follows it with the lost rank (i32, −1 when the
/// aborting rank failed for another reason) and its error text (u32 length + UTF-8, at most
/// `maximumReasonBytes`, so a peer cannot make this rank buffer without bound).
package enum LivenessMessage: Equatable {
    /// Clean shutdown; EOF follows.
    case goodbye
    /// The sender failed: `lostRank` is the peer it lost (nil for any other failure), `reason` its error.
    case abort(lostRank: Int32?, reason: String)

    private static let goodbyeType: UInt8 = 1
    private static let abortType: UInt8 = 2
    /// Longest abort text sent or accepted; longer errors are cut at a character boundary.
    package static let maximumReasonBytes = 16 << 10

    package func encoded() -> [UInt8] {
        switch self {
        case .goodbye:
            return [Self.goodbyeType]
        case let .abort(lostRank, reason):
            var writer = ByteWriter()
            writer.append(Self.abortType)
            writer.append(lostRank ?? -1)
            // The longest run of whole characters that fits (one pass: dropping one character at a time and
            // recounting would be quadratic in the error's length).
            var length = 0
            var end = reason.startIndex
            for index in reason.indices {
                length += reason[index].utf8.count
                guard length <= Self.maximumReasonBytes else { break }
                end = reason.index(after: index)
            }
            writer.append(string: String(reason[..<end]))
            return writer.bytes
        }
    }

    /// Takes the first complete message off the front of `buffer`; nil (buffer untouched) while it is incomplete.
    ///
    /// - Throws: `ByteReader.Invalid` for an unknown type, a negative rank other than −1, an over-long or
    ///   non-UTF-8 text: the stream cannot be trusted past that point.
    package static func next(from buffer: inout [UInt8]) throws(ByteReader.Invalid) -> LivenessMessage? {
        guard let type = buffer.first else { return nil }
        switch type {
        case goodbyeType:
            buffer.removeFirst()
            return .goodbye
        case abortType:
            guard buffer.count >= 9 else { return nil }
            var header = ByteReader(Array(buffer[1..<9]))
            let lost = try header.read(Int32.self)
            let length = Int(try header.read(UInt32.self))
            guard lost >= -1 else { throw ByteReader.Invalid(description: "abort names rank \(lost)") }
            guard length <= maximumReasonBytes else {
                throw ByteReader.Invalid(description: "abort text of \(length) bytes (at most \(maximumReasonBytes))")
            }
            guard buffer.count >= 9 + length else { return nil }
            guard let reason = String(validating: buffer[9..<(9 + length)], as: UTF8.self) else {
                throw ByteReader.Invalid(description: "abort text is not UTF-8")
            }
            buffer.removeFirst(9 + length)
            return .abort(lostRank: lost >= 0 ? lost : nil, reason: reason)
        default:
            throw ByteReader.Invalid(description: "unknown liveness message type \(type)")
        }
    }
}
