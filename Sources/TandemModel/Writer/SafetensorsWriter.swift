import Foundation
import TandemTensor

/// Writes a `.safetensors` file tensor by tensor: the header (8-byte little-endian length, JSON padded with
/// spaces to 8 bytes) is computed from the shapes up front, then each tensor's bytes are produced and written
/// in turn, so a checkpoint larger than memory can be written.
struct SafetensorsWriter {
    struct Entry {
        let name: String
        let dtype: DType
        let shape: [Int]
        var byteCount: Int { shape.reduce(1, *) * dtype.byteSize }
    }

    /// Writes `entries` to `path`; `fill` writes the bytes of one entry into the buffer it is given.
    static func write(
        _ entries: [Entry], to path: String, fill: (Entry, UnsafeMutableRawBufferPointer) -> Void
    ) throws {
        var header: [String: Any] = ["__metadata__": ["format": "pt"]]
        var offset = 0
        for entry in entries {
            header[entry.name] = ["dtype": safetensorsName(entry.dtype), "shape": entry.shape, "data_offsets": [offset, offset + entry.byteCount]]
            offset += entry.byteCount
        }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        while json.count % 8 != 0 { json.append(0x20) }
        guard FileManager.default.createFile(atPath: path, contents: nil), let handle = FileHandle(forWritingAtPath: path) else {
            throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: path])
        }
        defer { try? handle.close() }
        var length = UInt64(json.count).littleEndian
        try handle.write(contentsOf: Data(bytes: &length, count: 8))
        try handle.write(contentsOf: json)
        for entry in entries {
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: entry.byteCount, alignment: 64)
            defer { buffer.deallocate() }
            fill(entry, buffer)
            try handle.write(contentsOf: Data(bytesNoCopy: buffer.baseAddress!, count: entry.byteCount, deallocator: .none))
        }
    }

    static func safetensorsName(_ dtype: DType) -> String {
        SafetensorsFile.dtypes.first { $0.value == dtype }!.key
    }
}
