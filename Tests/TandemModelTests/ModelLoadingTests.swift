import Foundation
import TandemModel
import XCTest

/// Bad checkpoints: each is a clear error naming the file and, where there is one, the tensor or field.
final class ModelLoadingTests: XCTestCase {
    private var directory: URL!

    override func setUpWithError() throws {
        directory = URL(fileURLWithPath: try ModelFixtures.write(.tiny, test: self))
    }

    private func load() throws { _ = try LlamaModel(model: directory.path, group: .single) }

    private func editConfig(_ change: (inout [String: Any]) -> Void) throws {
        let url = directory.appendingPathComponent("config.json")
        var config = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
        change(&config)
        try JSONSerialization.data(withJSONObject: config).write(to: url)
    }

    func testMissingWeightsFileIsNamed() throws {
        try FileManager.default.removeItem(at: directory.appendingPathComponent("model.safetensors"))
        XCTAssertThrowsError(try load()) { error in
            guard case let ModelLoadError.missingFile(path, _) = error else { return XCTFail("\(error)") }
            XCTAssertTrue(path.hasPrefix(self.directory.path), path)
        }
    }

    func testMissingConfigIsNamed() throws {
        try FileManager.default.removeItem(at: directory.appendingPathComponent("config.json"))
        XCTAssertThrowsError(try load()) { error in
            guard case let ModelLoadError.missingFile(path, _) = error else { return XCTFail("\(error)") }
            XCTAssertTrue(path.hasSuffix("config.json"), path)
        }
    }

    /// A header length of 2⁶⁴−1 trapped converting to Int; now it is a malformed file like any other.
    func testAHeaderLengthBeyondIntIsMalformed() throws {
        let url = directory.appendingPathComponent("model.safetensors")
        var bytes = try Data(contentsOf: url)
        bytes.replaceSubrange(0..<8, with: [UInt8](repeating: 0xFF, count: 8))
        try bytes.write(to: url)
        XCTAssertThrowsError(try load()) { error in
            guard case let ModelLoadError.malformed(_, detail) = error else { return XCTFail("\(error)") }
            XCTAssertTrue(detail.contains("header length 18446744073709551615 exceeds the file"), detail)
        }
    }

    func testTruncatedWeightsFileIsMalformed() throws {
        let url = directory.appendingPathComponent("model.safetensors")
        let bytes = try Data(contentsOf: url)
        try bytes.prefix(bytes.count - 1000).write(to: url)
        XCTAssertThrowsError(try load()) { error in
            guard case let ModelLoadError.malformed(path, detail) = error else { return XCTFail("\(error)") }
            XCTAssertTrue(path.hasSuffix("model.safetensors"), path)
            XCTAssertFalse(detail.isEmpty)
        }
    }

    func testShapeThatDisagreesWithConfigNamesTheTensor() throws {
        try editConfig { $0["intermediate_size"] = 192 }
        XCTAssertThrowsError(try load()) { error in
            guard case let ModelLoadError.wrongShape(key, _, expected, actual) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(key, "model.layers.0.mlp.gate_proj.weight")
            XCTAssertEqual(expected, "[192, 64]")
            XCTAssertTrue(actual.contains("[128, 64]"), actual)
        }
    }

    func testUnsupportedModelTypeIsNamed() throws {
        try editConfig { $0["model_type"] = "gpt_neox" }
        XCTAssertThrowsError(try load()) { error in
            guard case let ModelLoadError.unsupported(_, detail) = error else { return XCTFail("\(error)") }
            XCTAssertTrue(detail.contains("gpt_neox"), detail)
        }
    }

    func testTiedConfigIgnoresAnUnusedHeadAsTransformersDoes() throws {
        // An untied checkpoint whose config says tied: transformers ignores lm_head.weight, and so does Tandem.
        try editConfig { $0["tie_word_embeddings"] = true }
        XCTAssertNoThrow(try load())
    }

    func testMissingHeadIsNamed() throws {
        try rewriteWeights { header, _ in header["lm_head.weight"] = nil }
        XCTAssertThrowsError(try load()) { error in
            guard case let ModelLoadError.missingTensor(key, _) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(key, "lm_head.weight")
        }
    }

    func testUnexpectedTensorIsNamed() throws {
        try rewriteWeights { header, data in
            header["model.layers.0.self_attn.rotary_extra.weight"] = ["dtype": "F32", "shape": [1], "data_offsets": [data.count, data.count + 4]]
            data.append(contentsOf: [0, 0, 0, 0])
        }
        XCTAssertThrowsError(try load()) { error in
            guard case let ModelLoadError.unexpectedTensor(key, _) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(key, "model.layers.0.self_attn.rotary_extra.weight")
        }
    }

    func testIntegerWeightIsAnUnsupportedDType() throws {
        try rewriteWeights { header, _ in
            var entry = header["model.norm.weight"] as! [String: Any]
            entry["dtype"] = "I16"
            header["model.norm.weight"] = entry
        }
        XCTAssertThrowsError(try load()) { error in
            guard case let ModelLoadError.unsupportedDType(key, _, _) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(key, "model.norm.weight")
        }
    }

    /// Rewrites model.safetensors with a header `edit` changed; the bytes of the entries left are packed again
    /// in their order (an entry `edit` adds points into the data it appended).
    private func rewriteWeights(_ edit: (inout [String: Any], inout Data) -> Void) throws {
        let url = directory.appendingPathComponent("model.safetensors")
        let bytes = try Data(contentsOf: url)
        let length = Int(bytes.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self).littleEndian })
        let original = try JSONSerialization.jsonObject(with: bytes.subdata(in: 8..<(8 + length))) as! [String: Any]
        let data = bytes.subdata(in: (8 + length)..<bytes.count)
        var header = original
        var newData = data
        edit(&header, &newData)
        // Re-pack the data of the entries that remain, in their original order.
        let kept = header.filter { $0.key != "__metadata__" }
            .compactMap { entry -> (String, [String: Any])? in (entry.value as? [String: Any]).map { (entry.key, $0) } }
            .sorted { ($0.1["data_offsets"] as! [Int])[0] < ($1.1["data_offsets"] as! [Int])[0] }
        var packed = Data()
        for (name, var entry) in kept {
            let offsets = entry["data_offsets"] as! [Int]
            let source = offsets[0] < data.count ? data : newData
            entry["data_offsets"] = [packed.count, packed.count + offsets[1] - offsets[0]]
            packed.append(source.subdata(in: offsets[0]..<offsets[1]))
            header[name] = entry
        }
        var json = try JSONSerialization.data(withJSONObject: header)
        while json.count % 8 != 0 { json.append(0x20) }
        var out = Data()
        var size = UInt64(json.count).littleEndian
        out.append(Data(bytes: &size, count: 8))
        out.append(json)
        out.append(packed)
        try out.write(to: url)
    }
}
