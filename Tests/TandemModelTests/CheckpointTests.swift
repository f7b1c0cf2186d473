import Foundation
import TandemModel
import TandemTensor
import XCTest

/// Safetensors files written byte by byte from the format's specification (8-byte little-endian header length,
/// JSON header, data), read back through `SafetensorsFile` and `Checkpoint`; every malformed case is an error
/// naming the file and key.
final class CheckpointTests: XCTestCase {
    /// One tensor for `file(_:)`: name, dtype name, shape, raw bytes.
    private typealias Entry = (name: String, dtype: String, shape: [Any], bytes: [UInt8])

    private var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("tandem-ckpt-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: directory)
    }

    /// Writes a safetensors file; `offsets` overrides the data offsets of an entry, `cut` drops trailing bytes.
    @discardableResult
    private func file(
        _ name: String, _ entries: [Entry], metadata: [String: String]? = nil, offsets: [String: [Int]] = [:], cut: Int = 0,
        headerLength: UInt64? = nil
    ) throws -> String {
        var header: [String: Any] = [:]
        var data: [UInt8] = []
        for entry in entries {
            header[entry.name] = ["dtype": entry.dtype, "shape": entry.shape, "data_offsets": offsets[entry.name] ?? [data.count, data.count + entry.bytes.count]]
            data += entry.bytes
        }
        if let metadata { header["__metadata__"] = metadata }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        while json.count % 8 != 0 { json.append(0x20) }  // the format pads with spaces
        var bytes: [UInt8] = []
        withUnsafeBytes(of: (headerLength ?? UInt64(json.count)).littleEndian) { bytes += $0 }
        bytes += json
        bytes += data
        let path = directory.appendingPathComponent(name).path
        try Data(bytes.dropLast(cut)).write(to: URL(fileURLWithPath: path))
        return path
    }

    private static func float32(_ values: [Float]) -> [UInt8] { values.flatMap { withUnsafeBytes(of: $0.bitPattern.littleEndian) { Array($0) } } }
    private static func int64(_ values: [Int64]) -> [UInt8] { values.flatMap { withUnsafeBytes(of: $0.littleEndian) { Array($0) } } }

    private let matrix: Entry = ("w", "F32", [2, 3], float32([1, 2, 3, 4, 5, 6]))
    private let halves: Entry = ("h", "BF16", [4], [0x80, 0x3F, 0x00, 0x40, 0x40, 0x40, 0x80, 0x40])  // 1, 2, 3, 4
    private let longs: Entry = ("ids", "I64", [2, 2], int64([7, -8, 9, 1 << 40]))

    func testTensorsSlicesAndMetadataReadBack() throws {
        let path = try file("model.safetensors", [matrix, halves, longs], metadata: ["format": "pt"])
        let safetensors = try SafetensorsFile(path: path)
        XCTAssertEqual(safetensors.metadata, ["format": "pt"])
        XCTAssertEqual(try safetensors.load("w").toDoubles(), [1, 2, 3, 4, 5, 6])
        XCTAssertEqual(try safetensors.load("h").toDoubles(), [1, 2, 3, 4])
        XCTAssertEqual(try safetensors.load("ids").toDoubles(), [7, -8, 9, Double(1 << 40)])
        let rows = try safetensors.load("w", dim: 0, range: 1..<2)
        XCTAssertEqual(rows.shape, [1, 3])
        XCTAssertEqual(rows.toDoubles(), [4, 5, 6])
        let columns = try safetensors.load("w", dim: 1, range: 1..<3)
        XCTAssertEqual(columns.shape, [2, 2])
        XCTAssertEqual(columns.toDoubles(), [2, 3, 5, 6])
        XCTAssertThrowsError(try safetensors.load("w", dim: 1, range: 2..<4)) { error in
            guard case .wrongShape(key: "w", _, _, _)? = error as? ModelLoadError else { return XCTFail("\(error)") }
        }
        let checkpoint = try Checkpoint(directory: directory.path)
        XCTAssertEqual(checkpoint.keys, ["h", "ids", "w"])
        XCTAssertNoThrow(try checkpoint.require("w", shape: [2, 3]))
        XCTAssertThrowsError(try checkpoint.require("w", shape: [3, 2])) { error in
            XCTAssertEqual(error as? ModelLoadError, .wrongShape(key: "w", path: path, expected: "[3, 2]", actual: "float32[2, 3]"))
        }
        XCTAssertThrowsError(try checkpoint.load("lm_head.weight")) { error in
            XCTAssertEqual(error as? ModelLoadError, .missingTensor(key: "lm_head.weight", path: path))
        }
    }

    func testMalformedFilesAreErrorsNamingTheProblem() throws {
        func failure(_ path: String) -> String {
            do {
                _ = try SafetensorsFile(path: path)
                return "opened"
            } catch {
                return "\(error)"
            }
        }
        let truncated = try file("truncated.safetensors", [matrix, longs], cut: 5)
        XCTAssertTrue(failure(truncated).contains("'ids'") && failure(truncated).contains("truncated"), failure(truncated))
        let huge = try file("huge.safetensors", [matrix], headerLength: 1 << 40)
        XCTAssertTrue(failure(huge).contains("header length"), failure(huge))
        let gap = try file("gap.safetensors", [matrix, longs], offsets: ["ids": [28, 60]], cut: 0)
        XCTAssertTrue(failure(gap).contains("data_offsets") || failure(gap).contains("gap"), failure(gap))
        let span = try file("span.safetensors", [matrix], offsets: ["w": [0, 20]])
        XCTAssertTrue(failure(span).contains("needs 24 bytes"), failure(span))
        // A shape whose product overflows Int (this crashed with SIGILL), and shapes that are not integers.
        let overflow = try file("overflow.safetensors", [("o", "F32", [1 << 40, 1 << 40], [])])
        XCTAssertTrue(failure(overflow).contains("more bytes than any file can hold"), failure(overflow))
        let fractional = try file("fraction.safetensors", [("f", "F32", [1.5], [])])
        XCTAssertTrue(failure(fractional).contains("two data_offsets (integers)"), failure(fractional))
        let vast = try file("vast.safetensors", [("v", "F32", [1e30], [])])
        XCTAssertTrue(failure(vast).contains("two data_offsets (integers)"), failure(vast))
        let double = try file("f64.safetensors", [("d", "F64", [1], [0, 0, 0, 0, 0, 0, 0xF0, 0x3F])])
        XCTAssertEqual(failure(double), "\(ModelLoadError.unsupportedDType(key: "d", path: double, dtype: "F64"))")
        let notJSON = directory.appendingPathComponent("text.safetensors").path
        try Data([4, 0, 0, 0, 0, 0, 0, 0] + Array("nope".utf8)).write(to: URL(fileURLWithPath: notJSON))
        XCTAssertTrue(failure(notJSON).contains("not JSON"), failure(notJSON))
        XCTAssertTrue(failure(directory.appendingPathComponent("absent.safetensors").path).contains("No such file"))
        XCTAssertThrowsError(try Checkpoint(directory: directory.appendingPathComponent("empty").path)) { error in
            XCTAssertTrue("\(error)".contains("no model.safetensors or model.safetensors.index.json"), "\(error)")
        }
    }

    func testShardedCheckpointsMatchTheirIndexBothWays() throws {
        let first = try file("model-00001-of-00002.safetensors", [matrix])
        try file("model-00002-of-00002.safetensors", [halves, longs])
        func index(_ map: [String: String]) throws {
            let json = try JSONSerialization.data(withJSONObject: ["metadata": ["total_size": 0], "weight_map": map])
            try json.write(to: directory.appendingPathComponent("model.safetensors.index.json"))
        }
        let complete = ["w": "model-00001-of-00002.safetensors", "h": "model-00002-of-00002.safetensors", "ids": "model-00002-of-00002.safetensors"]
        try index(complete)
        let checkpoint = try Checkpoint(directory: directory.path)
        XCTAssertEqual(try checkpoint.load("ids").toDoubles(), [7, -8, 9, Double(1 << 40)])
        XCTAssertEqual(try checkpoint.load("w", dim: 0, range: 0..<1).toDoubles(), [1, 2, 3])

        try index(complete.merging(["extra": "model-00001-of-00002.safetensors"]) { $1 })
        XCTAssertThrowsError(try Checkpoint(directory: directory.path)) { error in
            XCTAssertEqual(error as? ModelLoadError, .missingTensor(key: "extra", path: first))
        }
        // A shard holding a tensor the index does not list.
        try index(complete)
        try file("model-00001-of-00002.safetensors", [matrix, ("x", "F32", [1], Self.float32([0]))])
        XCTAssertThrowsError(try Checkpoint(directory: directory.path)) { error in
            XCTAssertEqual(error as? ModelLoadError, .unexpectedTensor(key: "x", path: first))
        }
        try index(complete.merging(["w": "../elsewhere.safetensors"]) { $1 })
        XCTAssertThrowsError(try Checkpoint(directory: directory.path)) { error in
            XCTAssertTrue("\(error)".contains("outside the checkpoint directory"), "\(error)")
        }
    }
}
