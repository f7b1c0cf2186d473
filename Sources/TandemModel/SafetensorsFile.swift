import Foundation
import TandemTensor

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Where one tensor lives in a safetensors file.
public struct TensorInfo: Sendable, Equatable {
    public let dtype: DType
    public let shape: [Int]
    /// Byte range inside the file's data section.
    let range: Range<Int>

    /// The number of elements.
    public var count: Int { shape.reduce(1, *) }
}

/// A memory-mapped `.safetensors` file: an 8-byte little-endian header length, a JSON header mapping each
/// tensor name to its dtype, shape and byte range, then the data.
///
/// The header is checked as strictly as the reference implementation: ranges must lie inside the file, match
/// `count × dtype size`, and tile the data section with no gap or overlap. Nothing is read until a tensor is
/// asked for, and then only its pages (or, for a slice, the pages of that slice), so a rank that loads 1/tp of
/// each weight touches about 1/tp of the file.
public final class SafetensorsFile: @unchecked Sendable {
    /// The file's path, as given.
    public let path: String
    /// Tensors by name.
    public let tensors: [String: TensorInfo]
    /// The free-form `__metadata__` entries.
    public let metadata: [String: String]

    private let file: MappedFile
    /// Start of the data section inside the mapping.
    private let dataOffset: Int

    /// The largest header the format allows (100 MB, as the reference implementation).
    static let maximumHeaderBytes = 100_000_000

    /// Opens and validates `path`.
    ///
    /// - Throws: `ModelLoadError.missingFile` when it cannot be opened, `.malformed` for a bad header or
    ///   truncated data, `.unsupportedDType` for a dtype Tandem does not compute with.
    public init(path: String) throws(ModelLoadError) {
        self.path = path
        file = try MappedFile(path: path)
        guard file.bytes.count >= 8 else { throw .malformed(path: path, detail: "\(file.bytes.count) bytes, shorter than the 8-byte header length") }
        (dataOffset, tensors, metadata) = try Self.layout(of: file.bytes, path: path)
    }

    /// The tensor `key`, copied into a new tensor of its own dtype and shape.
    public func load(_ key: String) throws(ModelLoadError) -> Tensor {
        let info = try self.info(key)
        let tensor = Tensor(zeros: info.shape, dtype: info.dtype)
        tensor.baseAddress.copyMemory(from: UnsafeRawPointer(file.bytes.baseAddress!) + dataOffset + info.range.lowerBound, byteCount: info.range.count)
        return tensor
    }

    /// Part of tensor `key` along `dim`: entries `range` of that dimension, everything of the others — a
    /// rank's shard of a column-parallel (dim 0 of a `[out, in]` weight) or row-parallel (dim 1) layer. Only
    /// the pages holding the slice are read.
    public func load(_ key: String, dim: Int, range: Range<Int>) throws(ModelLoadError) -> Tensor {
        let info = try self.info(key)
        guard (0..<info.shape.count).contains(dim), range.lowerBound >= 0, range.upperBound <= info.shape[dim] else {
            throw .wrongShape(
                key: key, path: path, expected: "a slice \(range) of dim \(dim)", actual: "\(info.dtype)\(info.shape)")
        }
        var shape = info.shape
        shape[dim] = range.count
        let tensor = Tensor(zeros: shape, dtype: info.dtype)
        let element = info.dtype.byteSize
        let outer = info.shape[..<dim].reduce(1, *)
        let inner = info.shape[(dim + 1)...].reduce(1, *)
        let rowBytes = range.count * inner * element
        let source = UnsafeRawPointer(file.bytes.baseAddress!) + dataOffset + info.range.lowerBound
        for row in 0..<outer {
            let from = source + (row * info.shape[dim] + range.lowerBound) * inner * element
            (tensor.baseAddress + row * rowBytes).copyMemory(from: from, byteCount: rowBytes)
        }
        return tensor
    }

    /// The dtype, shape and place of `key`.
    public func info(_ key: String) throws(ModelLoadError) -> TensorInfo {
        guard let info = tensors[key] else { throw .missingTensor(key: key, path: path) }
        return info
    }

    // MARK: - Header

    /// The format's dtype names (the writer uses them too).
    static let dtypes: [String: DType] = [
        "F32": .float32, "F16": .float16, "BF16": .bfloat16, "I8": .int8, "I32": .int32, "I64": .int64,
    ]
    /// Dtypes of the format that Tandem recognises but does not compute with.
    private static let knownOther: Set<String> = ["BOOL", "U8", "I16", "U16", "U32", "U64", "F64", "F8_E4M3", "F8_E5M2"]

    /// Where the data starts and what the header says about it, from the whole file's bytes.
    ///
    /// - Throws: `ModelLoadError.malformed` (a header length beyond the file or the limit, a header that is not
    ///   JSON or not a JSON object, a tensor whose fields do not add up, ranges that do not tile the data),
    ///   `.unsupportedDType`.
    static func layout(of file: UnsafeRawBufferPointer, path: String) throws(ModelLoadError) -> (dataOffset: Int, tensors: [String: TensorInfo], metadata: [String: String]) {
        guard file.count >= 8 else { throw .malformed(path: path, detail: "\(file.count) bytes, shorter than the 8-byte header length") }
        let declared = UInt64(littleEndian: file.loadUnaligned(as: UInt64.self))
        guard declared <= UInt64(maximumHeaderBytes), declared <= UInt64(file.count - 8) else {
            throw .malformed(path: path, detail: "header length \(declared) exceeds the file (\(file.count) bytes) or the 100 MB limit")
        }
        let dataOffset = 8 + Int(declared)
        let header = Data(UnsafeRawBufferPointer(rebasing: file[8..<dataOffset]))
        do {
            let (tensors, metadata) = try parse(header, path: path, dataBytes: file.count - dataOffset)
            return (dataOffset, tensors, metadata)
        } catch let error as ModelLoadError {
            throw error
        } catch {
            throw .malformed(path: path, detail: "\(error)")
        }
    }

    private static func parse(_ header: Data, path: String, dataBytes: Int) throws -> ([String: TensorInfo], [String: String]) {
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: header)
        } catch {
            throw ModelLoadError.malformed(path: path, detail: "the header is not JSON: \(error.localizedDescription)")
        }
        guard let entries = object as? [String: Any] else {
            throw ModelLoadError.malformed(path: path, detail: "the header is not a JSON object")
        }
        var tensors: [String: TensorInfo] = [:]
        var metadata: [String: String] = [:]
        for (key, value) in entries {
            if key == "__metadata__" {
                guard let pairs = value as? [String: String] else {
                    throw ModelLoadError.malformed(path: path, detail: "__metadata__ must map strings to strings")
                }
                metadata = pairs
                continue
            }
            guard let fields = value as? [String: Any], let dtypeName = fields["dtype"] as? String,
                let shape = (fields["shape"] as? [Any])?.compactMap(JSONInteger.exact),
                let offsets = (fields["data_offsets"] as? [Any])?.compactMap(JSONInteger.exact),
                offsets.count == 2, shape.count == (fields["shape"] as? [Any])?.count
            else {
                throw ModelLoadError.malformed(path: path, detail: "tensor '\(key)' needs dtype, shape and two data_offsets (integers)")
            }
            guard let dtype = dtypes[dtypeName] else {
                if knownOther.contains(dtypeName) { throw ModelLoadError.unsupportedDType(key: key, path: path, dtype: dtypeName) }
                throw ModelLoadError.malformed(path: path, detail: "tensor '\(key)' has unknown dtype \(dtypeName)")
            }
            guard shape.allSatisfy({ $0 >= 0 }), offsets[0] >= 0, offsets[0] <= offsets[1], offsets[1] <= dataBytes else {
                throw ModelLoadError.malformed(
                    path: path,
                    detail: "tensor '\(key)' has shape \(shape) and data_offsets \(offsets), outside the \(dataBytes) data bytes (truncated file?)")
            }
            // Checked: a shape from the file may multiply past Int.max.
            guard let expected = ([dtype.byteSize] + shape).checkedProduct else {
                throw ModelLoadError.malformed(path: path, detail: "tensor '\(key)' has shape \(shape), more bytes than any file can hold")
            }
            guard offsets[1] - offsets[0] == expected else {
                throw ModelLoadError.malformed(
                    path: path, detail: "tensor '\(key)' (\(dtypeName)\(shape)) needs \(expected) bytes, its data_offsets span \(offsets[1] - offsets[0])")
            }
            tensors[key] = TensorInfo(dtype: dtype, shape: shape, range: offsets[0]..<offsets[1])
        }
        // The ranges must tile the data section: no gap, no overlap.
        var end = 0
        for (key, info) in tensors.sorted(by: { ($0.value.range.lowerBound, $0.value.range.upperBound) < ($1.value.range.lowerBound, $1.value.range.upperBound) }) {
            guard info.range.lowerBound == end else {
                throw ModelLoadError.malformed(
                    path: path, detail: "tensor '\(key)' starts at data byte \(info.range.lowerBound), expected \(end) (a gap or an overlap)")
            }
            end = info.range.upperBound
        }
        guard end == dataBytes else {
            throw ModelLoadError.malformed(path: path, detail: "the tensors cover \(end) data bytes but the file has \(dataBytes)")
        }
        return (tensors, metadata)
    }
}
