import Foundation
import TandemModel
import TandemTestSupport
import XCTest

/// The GGUF reader against llama.cpp's own Python library (`gguf`: its writer makes the file, its reader says
/// what is in it), and on hostile files built byte by byte: each is refused with an error naming the problem.
final class GGUFFileTests: XCTestCase {
    func testReadsWhatTheGGUFPackageWrote() throws {
        let path = try Reference.temporaryDirectory(self).appendingPathComponent("reference.gguf").path
        let expected = try XCTUnwrap(JSONSerialization.jsonObject(with: Reference.python("gguf_reference.py", [path])) as? [String: Any])
        let file = try GGUFFile(path: path)
        XCTAssertEqual(file.version, 3)
        XCTAssertEqual(file.alignment, expected["alignment"] as? Int)
        XCTAssertEqual(file.dataOffset, expected["data_offset"] as? Int)
        let metadata = try XCTUnwrap(expected["metadata"] as? [[Any]])
        XCTAssertEqual(file.metadata.map(\.key), metadata.map { $0[0] as! String })
        for (entry, reference) in zip(file.metadata, metadata) {
            let type = reference[1] as! String
            let value = reference.last!
            switch entry.value {
            case let .array(elementType, values):
                XCTAssertEqual(type, "array")
                XCTAssertEqual("\(elementType)", reference[2] as? String, entry.key)
                XCTAssertEqual(values.map(Self.plain), (value as! [Any]).map { "\($0)" }, entry.key)
            default:
                XCTAssertEqual(Self.typeName(entry.value), type, entry.key)
                XCTAssertEqual(Self.plain(entry.value), "\(value)", entry.key)
            }
        }
        let tensors = try XCTUnwrap(expected["tensors"] as? [[String: Any]])
        XCTAssertEqual(file.tensors.map(\.name), tensors.map { $0["name"] as! String })
        for (tensor, reference) in zip(file.tensors, tensors) {
            XCTAssertEqual(Int(tensor.type.rawValue), reference["type"] as? Int, tensor.name)
            XCTAssertEqual(tensor.shape, reference["shape"] as? [Int], tensor.name)
            XCTAssertEqual(tensor.offset, reference["offset"] as? Int, tensor.name)
            XCTAssertEqual(tensor.byteCount, reference["bytes"] as? Int, tensor.name)
            let data = file.data(of: tensor)
            XCTAssertEqual(data.reduce(0) { $0 + Int($1) }, reference["byte_sum"] as? Int, tensor.name)
            XCTAssertEqual(data.prefix(16).map { String(format: "%02x", $0) }.joined(), reference["head"] as? String, tensor.name)
        }
        XCTAssertEqual(file["test.string"], .string("naïve ✓ text"))
        XCTAssertEqual(file["test.u64"], .uint64(18_000_000_000_000_000_000))
    }

    /// `tandem inspect` prints a file's metadata and tensors (row-major shapes); a bad file is one error line.
    func testInspectPrintsTheFileAndRefusesABadOne() throws {
        let directory = try Reference.temporaryDirectory(self)
        let path = directory.appendingPathComponent("reference.gguf").path
        _ = try Reference.python("gguf_reference.py", [path])
        let run = try BuiltProgram.run(BuiltProgram.tandem, ["inspect", path])
        XCTAssertEqual(run.status, 0, run.output)
        XCTAssertTrue(run.output.hasPrefix("GGUF v3: 17 metadata keys, 5 tensors, 952 bytes of data at byte 832 (alignment 64)"), run.output)
        XCTAssertEqual(run.lines(containing: "q8_0.weight  Q8_0    [4, 64]  272 bytes at 576").count, 1, run.output)
        XCTAssertEqual(run.lines(containing: "test.strings = [3 × string] \"a\", \"\", \"ünï\"").count, 1, run.output)
        let bad = directory.appendingPathComponent("bad.gguf").path
        try Data("GGML and then some".utf8).write(to: URL(fileURLWithPath: bad))
        let refused = try BuiltProgram.run(BuiltProgram.tandem, ["inspect", bad])
        XCTAssertNotEqual(refused.status, 0)
        XCTAssertEqual(refused.lines(containing: "not a GGUF file").count, 1, refused.output)
    }

    /// Values as the reference's JSON reads back here (booleans as 1 and 0).
    private static func plain(_ value: GGUFValue) -> String {
        switch value {
        case let .string(text): text
        case let .bool(flag): flag ? "1" : "0"
        case let .float32(number): "\(Double(number))"
        default: value.description
        }
    }

    private static func typeName(_ value: GGUFValue) -> String {
        switch value {
        case .uint8: "uint8"
        case .int8: "int8"
        case .uint16: "uint16"
        case .int16: "int16"
        case .uint32: "uint32"
        case .int32: "int32"
        case .float32: "float32"
        case .bool: "bool"
        case .string: "string"
        case .array: "array"
        case .uint64: "uint64"
        case .int64: "int64"
        case .float64: "float64"
        }
    }

    /// A GGUF file written by hand: `metadata` (key, type number, value bytes), then tensor infos, then data.
    private struct Builder {
        var magic = Array("GGUF".utf8)
        var version: UInt32 = 3
        var metadata: [(String, UInt32, [UInt8])] = []
        var tensors: [(name: String, dimensions: [UInt64], type: UInt32, offset: UInt64)] = []
        var dataBytes = 0
        var alignment = 32
        /// Overrides the tensor count written (a count the file cannot hold).
        var tensorCount: UInt64?

        static func le<Value: FixedWidthInteger>(_ value: Value) -> [UInt8] { withUnsafeBytes(of: value.littleEndian, Array.init) }
        static func string(_ text: String) -> [UInt8] { le(UInt64(text.utf8.count)) + Array(text.utf8) }

        func bytes() -> [UInt8] {
            var out = magic + Self.le(version) + Self.le(tensorCount ?? UInt64(tensors.count)) + Self.le(UInt64(metadata.count))
            for (key, type, value) in metadata { out += Self.string(key) + Self.le(type) + value }
            for tensor in tensors {
                out += Self.string(tensor.name) + Self.le(UInt32(tensor.dimensions.count))
                for extent in tensor.dimensions { out += Self.le(extent) }
                out += Self.le(tensor.type) + Self.le(tensor.offset)
            }
            out += Array(repeating: 0, count: (alignment - out.count % alignment) % alignment)
            return out + Array(repeating: 7, count: dataBytes)
        }
    }

    private func refusal(_ builder: Builder, truncatedBy cut: Int = 0) throws -> String {
        let url = try Reference.temporaryDirectory(self).appendingPathComponent("bad.gguf")
        try Data(builder.bytes().dropLast(cut)).write(to: url)
        do {
            _ = try GGUFFile(path: url.path)
            return "accepted"
        } catch {
            XCTAssertTrue("\(error)".contains(url.path), "the error names the file: \(error)")
            return "\(error)"
        }
    }

    func testHostileFilesAreRefusedNamingTheProblem() throws {
        var good = Builder()
        good.metadata = [("general.architecture", 8, Builder.string("llama"))]
        good.tensors = [("a", [64, 2], 8, 0), ("b", [4], 0, 160)]  // Q8_0 [2, 64]: 136 bytes; F32 [4] at 160
        good.dataBytes = 176
        XCTAssertEqual(try refusal(good), "accepted")

        var cases: [(Builder, Int, String)] = []
        func with(_ change: (inout Builder) -> Void) -> Builder {
            var builder = good
            change(&builder)
            return builder
        }
        cases.append((with { $0.magic = Array("GGML".utf8) }, 0, "does not start with the magic 'GGUF'"))
        cases.append((with { $0.version = 1 }, 0, "GGUF version 1 (Tandem reads versions 2 and 3)"))
        cases.append((with { $0.version = UInt32(3).byteSwapped }, 0, "big-endian"))
        cases.append((good, 10, "tensor 'b' (F32 [4], 16 bytes at data offset 160) ends past the file's 166 data bytes (truncated?)"))
        cases.append((with { $0.tensors[1].type = 99 }, 0, "'b' has ggml type 99, which Tandem does not know"))
        cases.append((with { $0.tensors[1].offset = 150 }, 0, "tensor 'b' starts at data offset 150, not a multiple of the alignment 32"))
        cases.append((with { $0.tensors[1].offset = 128 }, 0, "tensors 'a' and 'b' overlap"))
        cases.append((with { $0.tensors[0].dimensions = [33, 2] }, 0, "tensor 'a' (Q8_0) has a first dimension of 33, not a multiple of its block of 32"))
        cases.append((with { $0.tensors[1].dimensions = [1 << 40, 1 << 40] }, 0, "more bytes than any file can hold"))
        // Found by fuzz-gguf: a first dimension whose blocks' bytes alone overflow (9·10^18 / 32 × 34 > Int.max).
        cases.append((with { $0.tensors[0].dimensions = [9_000_000_000_000_000_000, 1] }, 0, "tensor 'a' has dimensions [9000000000000000000, 1]: more bytes than any file can hold"))
        cases.append((with { $0.tensors[1].dimensions = [1, 1, 1, 1, 1] }, 0, "tensor 'b' has 5 dimensions (ggml allows 1 to 4)"))
        cases.append((with { $0.tensors[1].name = "a" }, 0, "tensor 'a' appears twice"))
        cases.append((with { $0.tensorCount = 1 << 60 }, 0, "the tensor count is 1152921504606846976, more than the"))
        cases.append((with { $0.metadata.append(("general.alignment", 4, Builder.le(UInt32(48)))) }, 0, "general.alignment is 48; it must be a uint32 power of two"))
        cases.append((with { $0.metadata.append(("x", 13, [])) }, 0, "metadata 'x' has value type 13, which GGUF does not define"))
        cases.append((with { $0.metadata.append(("x", 8, Builder.le(UInt64(1) << 40))) }, 0, "metadata 'x''s length is 1099511627776, more than the"))
        cases.append((with { $0.metadata.append(("x", 8, Builder.le(UInt64(2)) + [0xC3, 0x28])) }, 0, "metadata 'x' is not UTF-8"))
        cases.append((with { $0.metadata.append(("x", 7, [2])) }, 0, "metadata 'x' is a bool of value 2"))
        cases.append((with { $0.metadata.append(("general.architecture", 8, Builder.string("qwen2"))) }, 0, "metadata key 'general.architecture' appears twice"))
        // An array of 2^30 uint64 in a small file: refused before anything is allocated.
        cases.append((with { $0.metadata.append(("x", 9, Builder.le(UInt32(10)) + Builder.le(UInt64(1) << 30))) }, 0, "metadata 'x''s length is 1073741824, more than the"))
        // Arrays nested past the limit.
        cases.append((with { $0.metadata.append(("x", 9, Array((0..<9).map { _ in Builder.le(UInt32(9)) + Builder.le(UInt64(1)) }.joined()))) }, 0, "nests arrays more than 8 deep"))
        cases.append((with { $0.metadata = [] }, 214, "tensor 'b''s offset needs 8 bytes at byte 90, past the end of the file's 90 (truncated?)"))
        cases.append((with { $0.metadata = [] }, 250, "the tensor count is 2, more than the 38 bytes left could hold"))
        cases.append((with { $0.metadata = [] }, 200, "the data section would start at byte 128, past the file's 104 bytes (truncated?)"))
        // A tensor of no bytes sits anywhere, even inside another's bytes: it holds nothing to overlap.
        var empty = good
        empty.tensors.append(("c", [0, 3], 0, 32))
        XCTAssertEqual(try refusal(empty), "accepted")
        for (builder, cut, expected) in cases {
            let message = try refusal(builder, truncatedBy: cut)
            XCTAssertTrue(message.contains(expected), "expected “\(expected)”, got: \(message)")
        }
    }
}
