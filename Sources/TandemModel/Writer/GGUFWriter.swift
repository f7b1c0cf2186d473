import Foundation

/// Writes a GGUF file (version 3, little-endian) as llama.cpp's writer lays it out: the header, the metadata in
/// the order given, the tensor infos, then each tensor's bytes at the next multiple of `alignment`.
public struct GGUFWriter {
    /// One tensor: its row-major shape (the file stores the dimensions reversed, ggml's order) and its bytes in
    /// `type` (whole blocks per row).
    public struct Tensor {
        public var name: String
        public var type: GGMLType
        public var shape: [Int]
        public var bytes: [UInt8]

        public init(name: String, type: GGMLType, shape: [Int], bytes: [UInt8]) {
            (self.name, self.type, self.shape, self.bytes) = (name, type, shape, bytes)
        }
    }

    public var metadata: [(key: String, value: GGUFValue)]
    public var tensors: [Tensor]
    /// Data alignment; other than 32, `general.alignment` says so.
    public var alignment: Int

    public init(metadata: [(key: String, value: GGUFValue)] = [], tensors: [Tensor] = [], alignment: Int = 32) {
        (self.metadata, self.tensors, self.alignment) = (metadata, tensors, alignment)
    }

    /// The file's bytes.
    ///
    /// - Precondition: each tensor's bytes are its shape's in its type.
    public func bytes() -> [UInt8] {
        var out: [UInt8] = Array("GGUF".utf8)
        Self.append(UInt32(3), to: &out)
        var entries = metadata
        if alignment != 32 && !entries.contains(where: { $0.key == "general.alignment" }) {
            entries.append(("general.alignment", .uint32(UInt32(alignment))))
        }
        Self.append(UInt64(tensors.count), to: &out)
        Self.append(UInt64(entries.count), to: &out)
        for (key, value) in entries {
            Self.append(key, to: &out)
            Self.append(value, to: &out, tagged: true)
        }
        var offset = 0
        for tensor in tensors {
            let (elements, bytes) = tensor.type.block
            precondition(
                tensor.bytes.count == tensor.shape.reduce(1, *) / elements * bytes && (tensor.shape.last ?? 1) % elements == 0,
                "\(tensor.name): \(tensor.bytes.count) bytes for \(tensor.type)\(tensor.shape)")
            Self.append(tensor.name, to: &out)
            Self.append(UInt32(tensor.shape.count), to: &out)
            for dimension in tensor.shape.reversed() { Self.append(UInt64(dimension), to: &out) }
            Self.append(tensor.type.rawValue, to: &out)
            Self.append(UInt64(offset), to: &out)
            offset += Self.padded(tensor.bytes.count, to: alignment)
        }
        out += [UInt8](repeating: 0, count: Self.padded(out.count, to: alignment) - out.count)
        for tensor in tensors {
            out += tensor.bytes
            out += [UInt8](repeating: 0, count: Self.padded(tensor.bytes.count, to: alignment) - tensor.bytes.count)
        }
        return out
    }

    /// Writes the file to `path`.
    public func write(to path: String) throws {
        try Data(bytes()).write(to: URL(fileURLWithPath: path))
    }

    private static func padded(_ count: Int, to alignment: Int) -> Int { (count + alignment - 1) / alignment * alignment }

    private static func append<Value: FixedWidthInteger>(_ value: Value, to out: inout [UInt8]) {
        withUnsafeBytes(of: value.littleEndian) { out += $0 }
    }

    private static func append(_ text: String, to out: inout [UInt8]) {
        append(UInt64(text.utf8.count), to: &out)
        out += text.utf8
    }

    private static func type(of value: GGUFValue) -> GGUFValueType {
        switch value {
        case .uint8: .uint8
        case .int8: .int8
        case .uint16: .uint16
        case .int16: .int16
        case .uint32: .uint32
        case .int32: .int32
        case .float32: .float32
        case .bool: .bool
        case .string: .string
        case .array: .array
        case .uint64: .uint64
        case .int64: .int64
        case .float64: .float64
        }
    }

    /// `value`, after its type when `tagged` (a metadata value; array elements carry none).
    private static func append(_ value: GGUFValue, to out: inout [UInt8], tagged: Bool) {
        if tagged { append(type(of: value).rawValue, to: &out) }
        switch value {
        case let .uint8(v): append(v, to: &out)
        case let .int8(v): append(v, to: &out)
        case let .uint16(v): append(v, to: &out)
        case let .int16(v): append(v, to: &out)
        case let .uint32(v): append(v, to: &out)
        case let .int32(v): append(v, to: &out)
        case let .float32(v): append(v.bitPattern, to: &out)
        case let .bool(v): out.append(v ? 1 : 0)
        case let .string(v): append(v, to: &out)
        case let .uint64(v): append(v, to: &out)
        case let .int64(v): append(v, to: &out)
        case let .float64(v): append(v.bitPattern, to: &out)
        case let .array(type, items):
            append(type.rawValue, to: &out)
            append(UInt64(items.count), to: &out)
            for item in items { append(item, to: &out, tagged: false) }
        }
    }
}
