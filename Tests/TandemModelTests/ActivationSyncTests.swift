import Foundation
import TandemComm
import TandemEngine
import TandemModel
import TandemTensor
import TandemTestSupport
import XCTest

/// `TANDEM_ACTIVATION_SYNC`: activations carried as bfloat16 or as blocks of 32 int8 values with an fp16 scale.
/// The codecs against llama.cpp's Python library (the `gguf` package's BF16 and Q8_0), the encoded all-reduce
/// against a numpy reference on thread ranks (every rank the same values; the bytes it counts), and a model's
/// logits under tp 2 and pp 2 with encoded activations against float32 sync.
final class ActivationSyncTests: XCTestCase {
    private struct Expected: Decodable {
        let bytes: String?
        let values: [Double]
    }

    private static func gaussians(_ count: Int, seed: UInt64) -> [Float] {
        var generator = SeededGenerator(seed: seed)
        return (0..<count).map { _ in Float.random(in: -1...1, using: &generator) * Float.random(in: 0...4, using: &generator) }
    }

    private static func hex(_ pointer: UnsafeRawPointer, _ count: Int) -> String {
        (0..<count).map { String(format: "%02x", pointer.load(fromByteOffset: $0, as: UInt8.self)) }.joined()
    }

    /// 100 values (three whole blocks and a tail of 4) encoded into 4 blocks: the bytes and decoded values are the
    /// gguf package's for the values padded with zeros; a fifth, empty block encodes as zeros.
    func testCodecsAreTheGGUFPackagesBF16AndQ8_0() throws {
        var values = Self.gaussians(100, seed: 3)
        values.replaceSubrange(32..<64, with: (0..<32).map { Float($0 % 9) * 127 / 8 - 63.5 })  // rounding boundaries
        let padded = values + [Float](repeating: 0, count: 28)
        let directory = try Reference.temporaryDirectory(self)
        let file = directory.appendingPathComponent("values.f32")
        try padded.withUnsafeBytes { try Data($0).write(to: file) }
        for (sync, format) in [(ActivationSync.int8, "q8_0"), (.bfloat16, "bf16")] {
            let expected = try JSONDecoder().decode(Expected.self, from: Reference.python("quant_reference.py", [format, file.path, "1", "128"]))
            let bytes = sync.encodedBytes(blocks: 5)
            let encoded = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
            defer { encoded.deallocate() }
            values.withUnsafeBufferPointer { sync.encode($0.baseAddress!, count: 100, blocks: 5, into: encoded) }
            let fourBlocks = sync.encodedBytes(blocks: 4)
            XCTAssertEqual(Self.hex(encoded, fourBlocks), expected.bytes, "\(sync)")
            XCTAssertEqual(Self.hex(encoded + fourBlocks, bytes - fourBlocks), String(repeating: "0", count: 2 * (bytes - fourBlocks)), "\(sync): empty block")
            var decoded = [Float](repeating: .nan, count: 100)
            decoded.withUnsafeMutableBufferPointer { sync.decode(encoded, count: 100, into: $0.baseAddress!) }
            XCTAssertEqual(decoded.map(Double.init), Array(expected.values.prefix(100)), "\(sync)")
        }
        XCTAssertEqual(ActivationSync.float32.encodedBytes(blocks: 1) / ActivationSync.int8.encodedBytes(blocks: 1), 3, "128 bytes against 34")
    }

    /// 2, 3 and 4 ranks on threads. 1,000 values each (one token's activations: every rank's encoded tensor
    /// together within the all-gather's 64 KiB latency limit) take the gathered form — every rank ends with the
    /// numpy reference's sum of the encoded contributions — and 40,000 (past it) the chunked form: chunks of whole
    /// blocks, the last rank's short, and the reference's sum encoded again. float32 sync is an exact sum. The bytes
    /// each rank counts: (n − 1) encoded tensors gathered, or 2 (n − 1) chunks; the chunked form 3.5× fewer or
    /// better at int8 than float32's ring schedule, the gathered one at two ranks.
    func testEncodedAllReduceGivesEveryRankTheReferenceSum() throws {
        XCTAssertLessThanOrEqual(4 * ActivationSync.bfloat16.encodedBytes(blocks: 32), AllGatherAlgorithm.smallLimitBytes, "1,000 values are gathered")
        XCTAssertGreaterThan(2 * ActivationSync.int8.encodedBytes(blocks: 40_000 / 32), AllGatherAlgorithm.smallLimitBytes, "40,000 are chunked")
        for (count, gathered) in [(1000, true), (40_000, false)] {
            for size in [2, 3, 4] {
                let inputs = (0..<size).map { Self.gaussians(count, seed: UInt64(10 + $0)) }
                let directory = try Reference.temporaryDirectory(self)
                let file = directory.appendingPathComponent("inputs.f32")
                try inputs.flatMap { $0 }.withUnsafeBytes { try Data($0).write(to: file) }
                var bytesBySync: [ActivationSync: Int] = [:]
                for sync in ActivationSync.allCases {
                    let label = "\(sync), \(count) values, size \(size)"
                    let results = try ThreadLauncher.run(worldSize: size) { world in
                        let group = TensorParallelGroup(world, activationSync: sync)
                        let tensor = Tensor(inputs[world.rank], shape: [count])
                        try group.allReduce(tensor)
                        return (tensor.toDoubles().map { Float($0) }, group.communication.allReduceBytes)
                    }.map { try $0.get() }
                    if sync == .float32 {
                        let exact = (0..<count).map { index in inputs.reduce(Float(0)) { $0 + $1[index] } }
                        for (rank, result) in results.enumerated() {
                            XCTAssertEqual(zip(result.0, exact).map { abs($0 - $1) }.max()!, 0, accuracy: 1e-5, "\(label), rank \(rank)")
                        }
                    } else {
                        let arguments = ["allreduce", sync.rawValue, String(size), String(count), file.path] + (gathered ? ["once"] : [])
                        let expected = try JSONDecoder().decode(Expected.self, from: Reference.python("quant_reference.py", arguments))
                        for (rank, result) in results.enumerated() {
                            let wrong = zip(result.0, expected.values).enumerated().filter { Double($0.element.0) != $0.element.1 }
                            XCTAssertEqual(wrong.count, 0, "\(label), rank \(rank): \(wrong.count) values differ, first \(wrong.first.map { "\($0)" } ?? "")")
                        }
                    }
                    let expectedBytes: Int
                    if sync == .float32 {
                        expectedBytes = 2 * (size - 1) * count * 4 / size
                    } else if gathered {
                        expectedBytes = (size - 1) * sync.encodedBytes(blocks: (count + 31) / 32)
                    } else {
                        expectedBytes = 2 * (size - 1) * sync.encodedBytes(blocks: (count + 32 * size - 1) / (32 * size))
                    }
                    XCTAssertEqual(results.map(\.1), [Int](repeating: expectedBytes, count: size), "\(label): bytes counted")
                    bytesBySync[sync] = results[0].1
                }
                if !gathered || size == 2 {
                    XCTAssertGreaterThanOrEqual(Double(bytesBySync[.float32]!) / Double(bytesBySync[.int8]!), 3.5, "\(count) values, size \(size)")
                }
            }
        }
    }

    /// The tiny preset's logits at every step with tp 2 and with pp 2 under encoded sync, against one rank: they move
    /// (the encoding is applied) by at most what the format's rounding explains — bfloat16 keeps 8 bits of each value,
    /// int8 about 7 of each block's largest — relative to the largest logit.
    func testEncodedSyncMovesLogitsWithinItsRounding() throws {
        let directory = try ModelFixtures.write(ModelPreset.tiny.with { $0.layerCount = 4 }, test: self)
        let single = try ModelFixtures.oneRankStepLogits(directory)
        for (sync, bound) in [(ActivationSync.bfloat16, 2e-2), (.int8, 5e-2)] {
            let tensorParallel = try ModelFixtures.onRanks(2) { group in
                try ModelFixtures.stepLogits(
                    LlamaModel(model: directory, group: TensorParallelGroup(group.group!, activationSync: sync)), prompt: ModelFixtures.stepPrompt,
                    continuation: ModelFixtures.stepContinuation)
            }[0]
            let pipeline = try ModelFixtures.pipelineStepLogits(
                directory, tensorParallelSize: 1, pipelineParallelSize: 2, prompt: ModelFixtures.stepPrompt, continuation: ModelFixtures.stepContinuation,
                activationSync: sync
            ).rows
            for (label, rows) in [("tp 2", tensorParallel), ("pp 2", pipeline)] {
                let error = ModelFixtures.relativeError(rows, single.map { $0.map(Double.init) })
                XCTAssertGreaterThan(error, 1e-6, "\(sync) \(label): the encoding changes the sums")
                XCTAssertLessThan(error, bound, "\(sync) \(label)")
                print("\(sync) \(label): logits move \(error) of the largest")
            }
        }
    }
}
