import Foundation
import TandemModel
import TandemTensor
import TandemTestSupport
import TandemTokenizer
import XCTest

/// GGUF files as models: what `GGUFExport` (and `tandem make-model --gguf`) writes against what llama.cpp's
/// library writes from the same checkpoint (tools/reference/convert_to_gguf.py), and the refusals of files a
/// model cannot be read from, each naming the key, tensor or type at fault. (The numbers a GGUF model computes
/// are checked against the numpy reference in LlamaReferenceTests, its tokenizer in TokenizerTests.)
final class GGUFModelTests: XCTestCase {
    /// Every tensor (name, type, shape, bytes) and every metadata entry of the two files is the same — for the
    /// k-quants, the reference writes the bytes of ggml's quantizer as its numpy port computes them.
    func testExportWritesWhatTheGGUFPackageWrites() throws {
        let cases: [(ModelPreset, String)] = [
            (.tiny, "q8_0"), (.tiny, "q4_0"), (.tiny, "f16"), (.tiny, "bf16"), (.tiny, "f32"), (ModelFixtures.tiedQwen2, "q8_0"), (.tinyMoE, "q4_0"),
            (ModelFixtures.kQuantWide, "q4_k"), (ModelFixtures.kQuantWide, "q6_k"),
        ]
        for (preset, type) in cases {
            let directory = try ModelFixtures.write(preset, test: self)
            let theirs = directory + "/theirs.gguf"
            _ = try Reference.python("convert_to_gguf.py", ["--model", directory, "--out", theirs, "--type", type])
            let ours = directory + "/ours.gguf"
            try GGUFExport.write(checkpoint: directory, type: GGUFExport.types.first { $0.description.lowercased() == type }!, to: ours)
            let (a, b) = (try GGUFFile(path: ours), try GGUFFile(path: theirs))
            let label = "\(preset.name) \(type)"
            XCTAssertEqual(a.metadata.map(\.key).sorted(), b.metadata.map(\.key).sorted(), label)
            for (key, value) in b.metadata { XCTAssertEqual(a[key], value, "\(label) \(key)") }
            XCTAssertEqual(a.tensors.map(\.name).sorted(), b.tensors.map(\.name).sorted(), label)
            for tensor in b.tensors {
                guard let mine = a.tensors.first(where: { $0.name == tensor.name }) else { continue }
                XCTAssertEqual(mine.type, tensor.type, "\(label) \(tensor.name)")
                XCTAssertEqual(mine.shape, tensor.shape, "\(label) \(tensor.name)")
                XCTAssertTrue(a.data(of: mine).elementsEqual(b.data(of: tensor)), "\(label) \(tensor.name): bytes differ")
            }
        }
    }

    /// `tandem make-model --gguf` writes a file `tandem generate` runs, with the checkpoint's tokenizer; a type it
    /// cannot write is refused naming the ones it can.
    func testMakeModelWritesAGGUFThatGenerates() throws {
        let directory = try Reference.temporaryDirectory(self).path + "/tiny"
        let made = try BuiltProgram.run(BuiltProgram.tandem, ["make-model", "--out", directory, "--preset", "tiny", "--gguf", "q4_0"])
        XCTAssertEqual(made.status, 0, made.output)
        XCTAssertTrue(made.output.contains("wrote \(directory)/model-q4_0.gguf: Q4_0"), made.output)
        let run = try BuiltProgram.run(
            BuiltProgram.tandem, ["generate", "--model", directory + "/model-q4_0.gguf", "--prompt", "Hello", "--max-tokens", "4", "--temperature", "0", "--json"])
        XCTAssertEqual(run.status, 0, run.output)
        let json = try JSONSerialization.jsonObject(with: Data(run.output.split(separator: "\n").last { $0.hasPrefix("{") }!.utf8)) as! [String: Any]
        let output = (json["outputs"] as! [[String: Any]])[0]
        XCTAssertEqual(output["prompt_token_ids"] as? [Int], try BytePairTokenizer(directory: directory).encode("Hello"))
        XCTAssertEqual((output["token_ids"] as? [Int])?.count, 4)
        let refused = try BuiltProgram.run(BuiltProgram.tandem, ["make-model", "--out", directory + "2", "--gguf", "q5_k"])
        XCTAssertNotEqual(refused.status, 0)
        XCTAssertTrue(refused.output.contains("--gguf must be one of f32, f16, bf16, q8_0, q4_0, q4_k, q6_k, got q5_k"), refused.output)
    }

    /// A GGUF model holds its file's tensors as they are stored — blocks stay blocks, the token embeddings too (a
    /// lookup dequantizes its row), and a tied head shares them: one rank's weights are exactly the file's tensor
    /// bytes, and two ranks' vocabulary shards and slices add up to the same (Qwen2's biases included).
    func testAGGUFModelHoldsItsFilesBytes() throws {
        // Whole 32-value blocks on each of 2 ranks, and a key/value head for each (one would be held by both).
        let qwen2 = ModelFixtures.tiedQwen2.with {
            $0.intermediateSize = 128
            $0.keyValueHeadCount = 2
        }
        for (preset, type) in [(ModelPreset.tiny, "q4_0"), (qwen2, "q8_0"), (ModelFixtures.kQuantWide, "q4_k_m")] {
            let directory = try ModelFixtures.write(preset, test: self)
            let path = directory + "/model.gguf"
            _ = try Reference.python("convert_to_gguf.py", ["--model", directory, "--out", path, "--type", type])
            let file = try GGUFFile(path: path)
            let fileBytes = file.tensors.reduce(0) { $0 + file.data(of: $1).count }
            let embedding = file.tensors.first { $0.name == "token_embd.weight" }!
            XCTAssertNotEqual(embedding.type, .f32, "\(preset.name) \(type): the fixture's embedding is stored as blocks")
            XCTAssertEqual(try LlamaModel(model: path, group: .single).weightBytes, fileBytes, "\(preset.name) \(type)")
            let ranks = try ModelFixtures.onRanks(2) { group in try LlamaModel(model: path, group: group).weightBytes }
            // Every rank holds the norms whole; the rest (embeddings, head, layers, Qwen2's q/k/v biases) is split.
            let replicated = file.tensors.filter { $0.shape.count == 1 && !$0.name.hasSuffix(".bias") }.reduce(0) { $0 + file.data(of: $1).count }
            XCTAssertEqual(ranks.reduce(0, +), fileBytes + replicated, "\(preset.name) \(type) over 2 ranks")
        }
    }

    /// A file rewritten from a valid one with one thing changed, and what loading it must say.
    func testFilesAModelCannotBeReadFromAreRefusedNamingTheProblem() throws {
        let directory = try ModelFixtures.write(.tiny, test: self)
        let valid = directory + "/valid.gguf"
        _ = try Reference.python("convert_to_gguf.py", ["--model", directory, "--out", valid, "--type", "q8_0"])
        let file = try GGUFFile(path: valid)
        let original = GGUFWriter(
            metadata: file.metadata,
            tensors: file.tensors.map { GGUFWriter.Tensor(name: $0.name, type: $0.type, shape: $0.shape, bytes: Array(file.data(of: $0))) })
        XCTAssertNoThrow(try LlamaModel(model: valid, group: .single))

        func setting(_ key: String, _ value: GGUFValue?) -> (inout GGUFWriter) -> Void {
            { writer in
                writer.metadata.removeAll { $0.key == key }
                if let value { writer.metadata.append((key, value)) }
            }
        }
        func tensor(_ name: String, _ change: @escaping (inout GGUFWriter.Tensor) -> Void) -> (inout GGUFWriter) -> Void {
            { writer in change(&writer.tensors[writer.tensors.firstIndex { $0.name == name }!]) }
        }
        let cases: [(String, (inout GGUFWriter) -> Void, String)] = [
            ("architecture", setting("general.architecture", .string("gpt2")), "unsupported GGUF architecture 'gpt2'; Tandem reads llama and qwen2"),
            ("missing key", setting("llama.block_count", nil), "metadata key 'llama.block_count' is missing"),
            ("key type", setting("llama.embedding_length", .string("64")), "metadata 'llama.embedding_length' must be a positive integer"),
            ("partial rotary", setting("llama.rope.dimension_count", .uint32(8)), "llama.rope.dimension_count 8: RoPE over part of a 16-value head"),
            ("rope scaling", setting("llama.rope.scaling.type", .string("yarn")), "llama.rope.scaling.type 'yarn'; Tandem reads none and linear"),
            (
                "tensor type",
                tensor("blk.0.attn_q.weight") { $0.type = .q4_1; $0.bytes = [UInt8](repeating: 0, count: $0.shape[0] * $0.shape[1] / 32 * 20) },
                "tensor 'blk.0.attn_q.weight' in \(directory)/edited.gguf has dtype Q4_1 (Tandem reads GGUF tensors in BF16, F16, F32, Q4_0, Q4_K, Q6_K, Q8_0)"
            ),
            ("unknown tensor", { $0.tensors.append(GGUFWriter.Tensor(name: "blk.0.attn_sinks.weight", type: .f32, shape: [4], bytes: [UInt8](repeating: 0, count: 16))) },
             "has a tensor 'blk.0.attn_sinks.weight' that the checkpoint does not account for"),
            ("layer outside the model", { $0.tensors.append(GGUFWriter.Tensor(name: "blk.7.attn_norm.weight", type: .f32, shape: [64], bytes: [UInt8](repeating: 0, count: 256))) },
             "has a tensor 'blk.7.attn_norm.weight' that the checkpoint does not account for"),
            ("rope factors", { $0.tensors.append(GGUFWriter.Tensor(name: "rope_freqs.weight", type: .f32, shape: [8], bytes: [UInt8](repeating: 0, count: 32))) },
             "unsupported RoPE frequency factors (rope_freqs.weight"),
            ("missing tensor", { $0.tensors.removeAll { $0.name == "blk.1.ffn_up.weight" } }, "tensor 'model.layers.1.mlp.up_proj.weight' is missing from"),
            ("wrong shape", tensor("blk.0.attn_k.weight") { $0.shape = [$0.shape[0] * 2, $0.shape[1]]; $0.bytes += $0.bytes },
             "tensor 'model.layers.0.self_attn.k_proj.weight' in \(directory)/edited.gguf is Q8_0[64, 64], expected [32, 64]"),
        ]
        let edited = directory + "/edited.gguf"
        for (label, change, message) in cases {
            var writer = original
            change(&writer)
            try writer.write(to: edited)
            XCTAssertThrowsError(try LlamaModel(model: edited, group: .single), label) { error in
                XCTAssertTrue("\(error)".contains(message), "\(label): \(error)")
            }
        }
        let tokenizerCases: [(String, (inout GGUFWriter) -> Void, String)] = [
            ("sentencepiece", setting("tokenizer.ggml.model", .string("llama")), "tokenizer.ggml.model 'llama'; Tandem reads byte-level BPE tokenizers ('gpt2')"),
            ("pre-tokenizer", setting("tokenizer.ggml.pre", .string("deepseek-llm")), "tokenizer.ggml.pre 'deepseek-llm'; Tandem reads gpt-2, llama-bpe, qwen2"),
            ("token types", setting("tokenizer.ggml.token_type", .array(.int32, [.int32(1)])), "tokenizer.ggml.token_type has 1 entries for 512 tokens"),
            ("bos id", setting("tokenizer.ggml.bos_token_id", .uint32(9999)), "tokenizer.ggml.bos_token_id 9999 is not among the 512 tokens"),
        ]
        for (label, change, message) in tokenizerCases {
            var writer = original
            change(&writer)
            try writer.write(to: edited)
            XCTAssertThrowsError(try ModelFiles.tokenizer(edited), label) { error in
                XCTAssertTrue("\(error)".contains(message), "\(label): \(error)")
            }
        }
        // A truncated file is refused by the reader before any of this.
        let bytes = try Data(contentsOf: URL(fileURLWithPath: valid))
        try bytes.prefix(bytes.count - 100).write(to: URL(fileURLWithPath: edited))
        XCTAssertThrowsError(try ModelFiles.config(edited)) { error in XCTAssertTrue("\(error)".contains("data bytes (truncated?)"), "\(error)") }
    }
}
