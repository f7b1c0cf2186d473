/// The type of a GGUF metadata value.
public enum GGUFValueType: UInt32, Sendable, CaseIterable {
    case uint8 = 0, int8, uint16, int16, uint32, int32, float32, bool, string, array, uint64, int64, float64
}

/// A GGUF metadata value.
public indirect enum GGUFValue: Sendable, Equatable, CustomStringConvertible {
    case uint8(UInt8), int8(Int8), uint16(UInt16), int16(Int16), uint32(UInt32), int32(Int32), float32(Float), bool(Bool)
    case string(String)
    /// Elements of one type.
    case array(GGUFValueType, [GGUFValue])
    case uint64(UInt64), int64(Int64), float64(Double)

    /// The value as an integer, when it is one of the integer types and fits.
    public var integer: Int? {
        switch self {
        case let .uint8(v): Int(v)
        case let .int8(v): Int(v)
        case let .uint16(v): Int(v)
        case let .int16(v): Int(v)
        case let .uint32(v): Int(v)
        case let .int32(v): Int(v)
        case let .uint64(v): Int(exactly: v)
        case let .int64(v): Int(v)
        default: nil
        }
    }

    public var description: String {
        switch self {
        case let .uint8(v): "\(v)"
        case let .int8(v): "\(v)"
        case let .uint16(v): "\(v)"
        case let .int16(v): "\(v)"
        case let .uint32(v): "\(v)"
        case let .int32(v): "\(v)"
        case let .float32(v): "\(v)"
        case let .bool(v): "\(v)"
        case let .string(v): v.debugDescription
        case let .uint64(v): "\(v)"
        case let .int64(v): "\(v)"
        case let .float64(v): "\(v)"
        case let .array(type, values): "[\(values.count) × \(type)]"
        }
    }
}

/// One tensor's entry in a GGUF file.
public struct GGUFTensorInfo: Sendable, Equatable {
    public let name: String
    /// ggml's order: `dimensions[0]` varies fastest, so a `[rows, columns]` matrix is `[columns, rows]` here.
    public let dimensions: [Int]
    public let type: GGMLType
    /// Offset of its data from the start of the data section (a multiple of the file's alignment).
    public let offset: Int
    /// Bytes of data.
    public let byteCount: Int

    /// The shape in row-major order (PyTorch's and safetensors'): the dimensions reversed.
    public var shape: [Int] { dimensions.reversed() }
}

/// A memory-mapped GGUF file (versions 2 and 3, little-endian), as llama.cpp writes them: a header (magic
/// `GGUF`, version, tensor and metadata counts), the metadata key–value pairs, the tensor infos, then the data
/// section at the next multiple of `general.alignment` (32 by default), every tensor's data at an aligned offset.
///
/// Everything is checked before it is used, since a file is untrusted input: counts and lengths against the bytes
/// left, names as UTF-8 and unique, at most 4 dimensions whose element count and byte size fit, a first
/// dimension that fills whole blocks of its type, aligned offsets, data inside the file and no two tensors
/// overlapping. Types Tandem does not know are named with their number.
public final class GGUFFile: @unchecked Sendable {
    public let path: String
    public let version: UInt32
    /// The metadata, in file order.
    public let metadata: [(key: String, value: GGUFValue)]
    /// The tensors, in file order.
    public let tensors: [GGUFTensorInfo]
    /// Data alignment (`general.alignment`, default 32).
    public let alignment: Int
    /// Where the data section starts in the file.
    public let dataOffset: Int
    private let file: MappedFile

    /// The most nested arrays a metadata value may have.
    static let maximumArrayDepth = 8

    /// Opens and checks `path`.
    ///
    /// - Throws: `ModelLoadError.missingFile` when it cannot be read, `.malformed` naming what is wrong and
    ///   where, `.unsupported` for a version, byte order or tensor type Tandem does not read.
    public init(path: String) throws(ModelLoadError) {
        self.path = path
        file = try MappedFile(path: path)
        let layout = try Self.layout(of: file.bytes, path: path)
        (version, metadata, tensors, alignment, dataOffset) = (layout.version, layout.metadata, layout.tensors, layout.alignment, layout.dataOffset)
    }

    /// What a file's header says, checked against its `bytes`.
    struct Layout {
        var version: UInt32
        var metadata: [(key: String, value: GGUFValue)]
        var tensors: [GGUFTensorInfo]
        var alignment: Int
        var dataOffset: Int
    }

    /// Reads and checks the header of a GGUF file whose bytes are `bytes` (`path` names it in errors).
    static func layout(of bytes: UnsafeRawBufferPointer, path: String) throws(ModelLoadError) -> Layout {
        var reader = Reader(bytes: bytes, path: path)
        guard bytes.count >= 4, try reader.bytes(4) == Array("GGUF".utf8) else {
            throw .malformed(path: path, detail: "not a GGUF file (it does not start with the magic 'GGUF')")
        }
        let version: UInt32 = try reader.integer("the version")
        guard version != 0x0300_0000 && version != 0x0200_0000 else {
            throw .unsupported(path: path, detail: "byte order: a big-endian GGUF file (version \(version.byteSwapped)); Tandem reads little-endian ones")
        }
        guard version == 2 || version == 3 else {
            throw .unsupported(path: path, detail: "GGUF version \(version) (Tandem reads versions 2 and 3)")
        }
        let tensorCount = try reader.count("the tensor count", minimumBytesEach: 8 + 4 + 8 + 4 + 8)
        let metadataCount = try reader.count("the metadata count", minimumBytesEach: 8 + 4)
        var metadata: [(key: String, value: GGUFValue)] = []
        var keys = Set<String>()
        for index in 0..<metadataCount {
            let key = try reader.string("metadata key \(index)")
            guard keys.insert(key).inserted else { throw .malformed(path: path, detail: "metadata key '\(key)' appears twice") }
            let type = try reader.valueType("metadata '\(key)'")
            metadata.append((key, try reader.value(type, of: "metadata '\(key)'", depth: 0)))
        }
        var alignment = 32
        if let entry = metadata.first(where: { $0.key == "general.alignment" }) {
            guard case let .uint32(value) = entry.value, value > 0, value & (value - 1) == 0 else {
                throw .malformed(path: path, detail: "general.alignment is \(entry.value); it must be a uint32 power of two")
            }
            alignment = Int(value)
        }
        var infos: [(name: String, dimensions: [Int], type: GGMLType, offset: Int)] = []
        var names = Set<String>()
        for index in 0..<tensorCount {
            let name = try reader.string("tensor \(index)'s name")
            guard names.insert(name).inserted else { throw .malformed(path: path, detail: "tensor '\(name)' appears twice") }
            let dimensionCount: UInt32 = try reader.integer("tensor '\(name)''s dimension count")
            guard (1...4).contains(dimensionCount) else {
                throw .malformed(path: path, detail: "tensor '\(name)' has \(dimensionCount) dimensions (ggml allows 1 to 4)")
            }
            var dimensions: [Int] = []
            for _ in 0..<dimensionCount {
                let extent: UInt64 = try reader.integer("tensor '\(name)''s dimensions")
                guard let value = Int(exactly: extent) else { throw .malformed(path: path, detail: "tensor '\(name)' has a dimension of \(extent)") }
                dimensions.append(value)
            }
            let typeNumber: UInt32 = try reader.integer("tensor '\(name)''s type")
            guard let type = GGMLType(rawValue: typeNumber) else {
                throw .unsupported(path: path, detail: "tensor type: '\(name)' has ggml type \(typeNumber), which Tandem does not know")
            }
            let offset: UInt64 = try reader.integer("tensor '\(name)''s offset")
            guard let start = Int(exactly: offset), start % alignment == 0 else {
                throw .malformed(path: path, detail: "tensor '\(name)' starts at data offset \(offset), not a multiple of the alignment \(alignment)")
            }
            infos.append((name, dimensions, type, start))
        }
        let headerEnd = reader.position
        let (aligned, overflow) = headerEnd.addingReportingOverflow((alignment - headerEnd % alignment) % alignment)
        guard !overflow, aligned <= bytes.count || infos.isEmpty else {
            throw .malformed(path: path, detail: "the data section would start at byte \(aligned), past the file's \(bytes.count) bytes (truncated?)")
        }
        let dataOffset = aligned
        let dataBytes = max(bytes.count - aligned, 0)
        var tensors: [GGUFTensorInfo] = []
        for (name, dimensions, type, offset) in infos {
            let block = type.block
            guard dimensions[0] % block.elements == 0 else {
                throw .malformed(
                    path: path, detail: "tensor '\(name)' (\(type)) has a first dimension of \(dimensions[0]), not a multiple of its block of \(block.elements)")
            }
            guard let byteCount = ([block.bytes, dimensions[0] / block.elements] + dimensions.dropFirst()).checkedProduct else {
                throw .malformed(path: path, detail: "tensor '\(name)' has dimensions \(dimensions): more bytes than any file can hold")
            }
            guard offset <= dataBytes, byteCount <= dataBytes - offset else {
                throw .malformed(
                    path: path,
                    detail: "tensor '\(name)' (\(type) \(dimensions), \(byteCount) bytes at data offset \(offset)) ends past the file's \(dataBytes) data bytes (truncated?)")
            }
            tensors.append(GGUFTensorInfo(name: name, dimensions: dimensions, type: type, offset: offset, byteCount: byteCount))
        }
        // Tensors of no bytes (a zero dimension) hold nothing to overlap.
        let ordered = tensors.filter { $0.byteCount > 0 }.sorted { $0.offset < $1.offset }
        for (before, after) in zip(ordered, ordered.dropFirst()) where before.offset + before.byteCount > after.offset {
            throw .malformed(path: path, detail: "tensors '\(before.name)' and '\(after.name)' overlap in the data section")
        }
        return Layout(version: version, metadata: metadata, tensors: tensors, alignment: alignment, dataOffset: dataOffset)
    }

    /// The metadata value of `key`, if present.
    public subscript(key: String) -> GGUFValue? { metadata.first { $0.key == key }?.value }

    /// The raw bytes of `tensor`'s data (valid while this file is).
    public func data(of tensor: GGUFTensorInfo) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: file.bytes[(dataOffset + tensor.offset)..<(dataOffset + tensor.offset + tensor.byteCount)])
    }

    /// A bounds-checked little-endian cursor over the file.
    private struct Reader {
        let bytes: UnsafeRawBufferPointer
        let path: String
        var position = 0

        private func truncated(_ what: String, needing count: Int) -> ModelLoadError {
            .malformed(path: path, detail: "\(what) needs \(count) bytes at byte \(position), past the end of the file's \(bytes.count) (truncated?)")
        }

        mutating func bytes(_ count: Int) throws(ModelLoadError) -> [UInt8] {
            guard count <= bytes.count - position else { throw truncated("the header", needing: count) }
            defer { position += count }
            return Array(bytes[position..<(position + count)])
        }

        mutating func integer<Value: FixedWidthInteger>(_ what: String) throws(ModelLoadError) -> Value {
            let size = MemoryLayout<Value>.size
            guard size <= bytes.count - position else { throw truncated(what, needing: size) }
            defer { position += size }
            return Value(littleEndian: bytes.loadUnaligned(fromByteOffset: position, as: Value.self))
        }

        /// A count of items of at least `minimumBytesEach` bytes, checked against the bytes left.
        mutating func count(_ what: String, minimumBytesEach: Int) throws(ModelLoadError) -> Int {
            let value: UInt64 = try integer(what)
            let left = bytes.count - position
            guard value <= UInt64(left / max(minimumBytesEach, 1)) else {
                throw .malformed(path: path, detail: "\(what) is \(value), more than the \(left) bytes left could hold")
            }
            return Int(value)
        }

        mutating func string(_ what: String) throws(ModelLoadError) -> String {
            let length = try count("\(what)'s length", minimumBytesEach: 1)
            let raw = try bytes(length)
            guard let text = String(validating: raw, as: UTF8.self) else {
                throw .malformed(path: path, detail: "\(what) is not UTF-8 (byte \(position - length))")
            }
            return text
        }

        mutating func valueType(_ what: String) throws(ModelLoadError) -> GGUFValueType {
            let number: UInt32 = try integer("\(what)'s type")
            guard let type = GGUFValueType(rawValue: number) else { throw .malformed(path: path, detail: "\(what) has value type \(number), which GGUF does not define") }
            return type
        }

        mutating func value(_ type: GGUFValueType, of what: String, depth: Int) throws(ModelLoadError) -> GGUFValue {
            switch type {
            case .uint8: return .uint8(try integer(what))
            case .int8: return .int8(try integer(what))
            case .uint16: return .uint16(try integer(what))
            case .int16: return .int16(try integer(what))
            case .uint32: return .uint32(try integer(what))
            case .int32: return .int32(try integer(what))
            case .uint64: return .uint64(try integer(what))
            case .int64: return .int64(try integer(what))
            case .float32: return .float32(Float(bitPattern: try integer(what)))
            case .float64: return .float64(Double(bitPattern: try integer(what)))
            case .bool:
                let byte: UInt8 = try integer(what)
                guard byte <= 1 else { throw .malformed(path: path, detail: "\(what) is a bool of value \(byte)") }
                return .bool(byte == 1)
            case .string: return .string(try string(what))
            case .array:
                guard depth < GGUFFile.maximumArrayDepth else {
                    throw .malformed(path: path, detail: "\(what) nests arrays more than \(GGUFFile.maximumArrayDepth) deep")
                }
                let element = try valueType("\(what)'s elements")
                let count = try count("\(what)'s length", minimumBytesEach: element.minimumBytes)
                var values: [GGUFValue] = []
                values.reserveCapacity(count)
                for _ in 0..<count { values.append(try value(element, of: what, depth: depth + 1)) }
                return .array(element, values)
            }
        }
    }
}

extension GGUFValueType {
    /// The fewest bytes a value of this type takes (a string or array: its length field).
    var minimumBytes: Int {
        switch self {
        case .uint8, .int8, .bool: 1
        case .uint16, .int16: 2
        case .uint32, .int32, .float32: 4
        case .uint64, .int64, .float64, .string: 8
        case .array: 12
        }
    }
}
