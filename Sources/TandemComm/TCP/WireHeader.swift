/// The operations whose messages travel on the data plane; carried in every `WireHeader`.
public enum OperationKind: UInt8, Sendable, CustomStringConvertible {
    case allReduce = 1, allGather, allGatherV, reduceScatter, reduceScatterV, broadcast, gather, scatter
    case send, allToAll, allToAllV, barrier

    public var description: String {
        switch self {
        case .allReduce: "allReduce"
        case .allGather: "allGather"
        case .allGatherV: "allGatherV"
        case .reduceScatter: "reduceScatter"
        case .reduceScatterV: "reduceScatterV"
        case .broadcast: "broadcast"
        case .gather: "gather"
        case .scatter: "scatter"
        case .send: "send/recv"
        case .allToAll: "allToAll"
        case .allToAllV: "allToAllV"
        case .barrier: "barrier"
        }
    }
}

/// The fixed 40-byte header in front of every data message.
///
/// A receiver knows what it expects (group, operation, sequence number, dtype, tag, the operation's element
/// count and this message's byte count) and compares the whole header, so ranks that disagree get a
/// `mismatch` error naming both sides instead of a hang or mixed data. The group id matters on the split path,
/// where groups carved from one parent share its connections.
///
/// Layout (little-endian): magic u16, operation u8, dtype u8, tag i32, sequence u64, count u64,
/// payloadBytes u64, group u32, 4 reserved zero bytes.
struct WireHeader: Equatable {
    static let byteCount = 40
    static let magic: UInt16 = 0x4D54

    /// A 32-bit id of the group the message belongs to (`groupIdentifier(_:)` of its name).
    var group: UInt32
    var operation: UInt8
    var dtype: UInt8
    var tag: Int32
    var sequence: UInt64
    /// The element count all participants must agree on (the operation's total, or the message's own for
    /// point-to-point style messages).
    var count: UInt64
    var payloadBytes: UInt64

    func encode(into buffer: UnsafeMutableRawPointer) {
        buffer.storeBytes(of: Self.magic.littleEndian, toByteOffset: 0, as: UInt16.self)
        buffer.storeBytes(of: operation, toByteOffset: 2, as: UInt8.self)
        buffer.storeBytes(of: dtype, toByteOffset: 3, as: UInt8.self)
        buffer.storeBytes(of: tag.littleEndian, toByteOffset: 4, as: Int32.self)
        buffer.storeBytes(of: sequence.littleEndian, toByteOffset: 8, as: UInt64.self)
        buffer.storeBytes(of: count.littleEndian, toByteOffset: 16, as: UInt64.self)
        buffer.storeBytes(of: payloadBytes.littleEndian, toByteOffset: 24, as: UInt64.self)
        buffer.storeBytes(of: group.littleEndian, toByteOffset: 32, as: UInt32.self)
        buffer.storeBytes(of: UInt32(0), toByteOffset: 36, as: UInt32.self)
    }

    /// The id of the group named `name` (FNV-1a, folded to 32 bits): equal on every member.
    static func groupIdentifier(_ name: String) -> UInt32 {
        let hash = stableHash(name)
        return UInt32(truncatingIfNeeded: hash ^ (hash >> 32))
    }

    /// Decodes a header; nil when the magic is wrong (a corrupt or foreign stream).
    static func decode(from buffer: UnsafeRawPointer) -> WireHeader? {
        guard UInt16(littleEndian: buffer.loadUnaligned(fromByteOffset: 0, as: UInt16.self)) == magic else { return nil }
        return WireHeader(
            group: UInt32(littleEndian: buffer.loadUnaligned(fromByteOffset: 32, as: UInt32.self)),
            operation: buffer.load(fromByteOffset: 2, as: UInt8.self),
            dtype: buffer.load(fromByteOffset: 3, as: UInt8.self),
            tag: Int32(littleEndian: buffer.loadUnaligned(fromByteOffset: 4, as: Int32.self)),
            sequence: UInt64(littleEndian: buffer.loadUnaligned(fromByteOffset: 8, as: UInt64.self)),
            count: UInt64(littleEndian: buffer.loadUnaligned(fromByteOffset: 16, as: UInt64.self)),
            payloadBytes: UInt64(littleEndian: buffer.loadUnaligned(fromByteOffset: 24, as: UInt64.self)))
    }

    /// A human description for mismatch errors: `allReduce #7 (float32, 1024 elements, 4096 bytes, tag 0)`.
    var summary: String {
        let name = OperationKind(rawValue: operation).map(String.init(describing:)) ?? "operation \(operation)"
        let type = DTypeName.of(dtype)
        return "\(name) #\(sequence) (\(type), \(count) elements, \(payloadBytes) bytes in this message, tag \(tag), group id \(group))"
    }
}

import TandemTensor

private enum DTypeName {
    static func of(_ raw: UInt8) -> String {
        DType(rawValue: raw).map(String.init(describing:)) ?? (raw == 0 ? "bytes" : "dtype \(raw)")
    }
}
