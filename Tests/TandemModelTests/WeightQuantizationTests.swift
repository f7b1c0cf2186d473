import CTandemKernels
import Foundation
import TandemTensor
import XCTest

/// ggml's Q8_0 and Q4_0 blocks as Tandem writes and multiplies them, against llama.cpp's own Python library (the
/// `gguf` package, whose quantizers give the bytes of ggml's reference C ones): the same bytes, the same values,
/// and products that match a float64 product of the dequantized values; and the k-quants (Q4_K, Q6_K): their
/// blocks as that package dequantizes them, and float rows quantized to the bytes of ggml's reference quantizers
/// (which the package lacks; written in numpy from ggml's algorithm).
final class WeightQuantizationTests: XCTestCase {
    /// Rows that exercise the quantizers' corners: random normals; a zero block; one value far above the rest; the
    /// largest magnitude negative (Q4_0 keeps its sign); scales in fp16's subnormal range and below it; values on
    /// the rounding boundaries of both formats; a block of equal values; and exact halves at scale 1.
    /// 127, then ±0.5, ±1.5, … ±3.5: the scale is exactly 1.
    private static let exactHalves: [Float] = (0..<32).map { (index: Int) -> Float in
        guard index > 0 else { return 127 }
        let half = Float(index % 8) - 3.5
        return index % 2 == 0 ? half : -half
    }

    private static func weights(rows: Int, columns: Int, seed: UInt64) -> [Float] {
        var generator = SeededGenerator(seed: seed)
        var values = (0..<(rows * columns)).map { _ in Self.gaussian(&generator) }
        let specials: [[Float]] = [
            [Float](repeating: 0, count: 32),
            (0..<32).map { $0 == 5 ? 900 : Float($0) * 0.01 },
            (0..<32).map { $0 == 17 ? -3.5 : Float($0 % 7) * 0.25 - 0.75 },
            (0..<32).map { Float($0 + 1) * 1e-9 },
            (0..<32).map { Float($0 + 1) * 3e-6 },
            (0..<32).map { Float($0) - 15.5 },  // q4_0 scale −16/−8: halves land on x.5 + 8.5
            (0..<32).map { Float($0 % 9) * 127 / 8 - 63.5 },
            [Float](repeating: -2.25, count: 32),
            // Scale exactly 1: exact halves, where rounding half away from zero (ggml's roundf) and to even differ.
            Self.exactHalves,
        ]
        for (index, special) in specials.enumerated() where (index + 1) * 32 <= values.count {
            values.replaceSubrange((index * 32)..<((index + 1) * 32), with: special)
        }
        return values
    }

    /// A standard normal value (Box–Muller).
    private static func gaussian(_ generator: inout SeededGenerator) -> Float {
        let u = Double.random(in: Double.ulpOfOne..<1, using: &generator), v = Double.random(in: 0..<1, using: &generator)
        return Float((-2 * log(u)).squareRoot() * cos(2 * .pi * v))
    }

    private struct Expected: Decodable {
        let bytes: String
        let values: [Double]
        let product_quantized_inputs: [Double]?
    }

    private func reference(_ format: WeightQuantization, weights: [Float], rows: Int, columns: Int, inputs: [Float]? = nil) throws -> Expected {
        let directory = try Reference.temporaryDirectory(self)
        let weightsFile = directory.appendingPathComponent("weights.f32")
        try weights.withUnsafeBytes { try Data($0).write(to: weightsFile) }
        var arguments = [format.rawValue, weightsFile.path, String(rows), String(columns)]
        if let inputs {
            let inputsFile = directory.appendingPathComponent("inputs.f32")
            try inputs.withUnsafeBytes { try Data($0).write(to: inputsFile) }
            arguments += [inputsFile.path, String(inputs.count / columns)]
        }
        return try JSONDecoder().decode(Expected.self, from: Reference.python("quant_reference.py", arguments))
    }

    private static func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }

    func testBlocksAreGGMLsBytesAndValues() throws {
        let (rows, columns) = (12, 96)  // 36 blocks: the 9 special ones first
        let weights = Self.weights(rows: rows, columns: columns, seed: 7)
        for format in [WeightQuantization.q8_0, .q4_0] {
            let expected = try reference(format, weights: weights, rows: rows, columns: columns)
            let bytes = weights.withUnsafeBufferPointer { format.quantize($0.baseAddress!, rows: rows, columns: columns) }
            XCTAssertEqual(bytes.count, rows * columns / 32 * (format == .q8_0 ? 34 : 18), "\(format)")
            // Block by block, so a mismatch names the block.
            let blockHex = format.blockBytes * 2
            let (mine, theirs) = (Array(Self.hex(bytes)), Array(expected.bytes))
            XCTAssertEqual(mine.count, theirs.count, "\(format)")
            for block in 0..<(rows * columns / 32) where mine.count == theirs.count {
                let range = (block * blockHex)..<((block + 1) * blockHex)
                XCTAssertEqual(String(mine[range]), String(theirs[range]), "\(format) block \(block)")
            }
            let values = format.dequantize(bytes, rows: rows, columns: columns)
            XCTAssertEqual(values.map(Double.init), expected.values, "\(format): dequantized")
        }
    }

    /// The integer kernel (AVX2 and portable: the same integer products per block) against the float64 product of
    /// the dequantized weights and the inputs quantized to Q8_0 — over the interleaved layout, whole and in ranges
    /// that cut its 8-row groups, with 6 rows past the last group; `LinearWeight` likewise, whatever the rows.
    func testProductsMatchTheDequantizedValues() throws {
        let (n, k) = (70, 128)
        let weights = Self.weights(rows: n, columns: k, seed: 11)
        var generator = SeededGenerator(seed: 12)
        for format in [WeightQuantization.q8_0, .q4_0] {
            let code: Int32 = format == .q8_0 ? TANDEM_Q8_0 : TANDEM_Q4_0
            let blocks = weights.withUnsafeBufferPointer { format.quantize($0.baseAddress!, rows: n, columns: k) }
            let interleaved = checkedInterleave(blocks, format, code: code, rows: n, columns: k)
            for m in [1, 3, 8, 9, 64, 130] {
                let inputs = (0..<(m * k)).map { _ in Self.gaussian(&generator) }
                let expected = try reference(format, weights: weights, rows: n, columns: k, inputs: inputs)
                let scale = expected.product_quantized_inputs!.map(abs).max()!
                if m <= 64 {
                    let quantizedInputs = inputs.withUnsafeBufferPointer { WeightQuantization.q8_0.quantize($0.baseAddress!, rows: m, columns: k) }
                    checkKernel(code, "\(format) m \(m)", inputs: quantizedInputs, weights: interleaved, m: m, n: n, k: k, cuts: [0, 13, 21, 24, 67, n], expected: expected.product_quantized_inputs!)
                }
                let weight = LinearWeight(Tensor(weights, shape: [n, k]), quantization: format, threads: 2)
                XCTAssertEqual(weight.byteCount, blocks.count)
                let output = Tensor(zeros: [m, n], dtype: .float32)
                weight.apply(Tensor(inputs, shape: [m, k]), into: output)
                let reference = expected.product_quantized_inputs!
                let worst = (0..<(m * n)).map { abs(Double(output.floats[$0]) - reference[$0]) }.max()!
                XCTAssertLessThan(worst, 1e-5 * scale, "\(format) m \(m) through LinearWeight")
            }
        }
    }

    /// `tandem_linear_quant` of `weights` (interleaved) against `inputs` (m quantized rows), on every path this CPU
    /// has (portable, AVX2), in one call and in the ranges between `cuts`: every output written, each within 1e-5
    /// of `expected`'s largest magnitude.
    /// `blocks` (`n` rows of `k` values) interleaved as the kernels read them, after checking the layout: the rows
    /// of whole 8-row groups reordered, the rows past the last group as they were, and every row read back as
    /// ggml's values — rows 5 … n − 1 in one call, rows 0 … 4 in another, so both cut a group.
    private func checkedInterleave(_ blocks: [UInt8], _ format: WeightQuantization, code: Int32, rows n: Int, columns k: Int) -> [UInt8] {
        var interleaved = blocks
        interleaved.withUnsafeMutableBytes { tandem_quant_interleave(code, $0.baseAddress!, n, k) }
        let pastGroups = n / 8 * 8 * blocks.count / n  // the byte where the rows past the last group start
        XCTAssertNotEqual(interleaved, blocks, "\(format): the groups are reordered")
        XCTAssertEqual(interleaved[pastGroups...], blocks[pastGroups...], "\(format): rows past the last group stay")
        var values = [Float](repeating: .nan, count: n * k)
        interleaved.withUnsafeBytes { w in
            values.withUnsafeMutableBufferPointer { out in
                tandem_dequantize_weight_rows(code, w.baseAddress!, n, k, 5, n - 5, out.baseAddress! + 5 * k)
                tandem_dequantize_weight_rows(code, w.baseAddress!, n, k, 0, 5, out.baseAddress!)
            }
        }
        XCTAssertEqual(values, format.dequantize(blocks, rows: n, columns: k), "\(format): rows read back from the interleaved layout")
        return interleaved
    }

    private func checkKernel(_ code: Int32, _ label: String, inputs: [UInt8], weights: [UInt8], m: Int, n: Int, k: Int, cuts: [Int], expected: [Double]) {
        let scale = expected.map(abs).max()!
        for avx2: Int32 in tandem_has_avx2() != 0 ? [0, 1] : [0] {
            for ranges in [[0, n], cuts] {
                var output = [Float](repeating: .nan, count: m * n)
                inputs.withUnsafeBytes { x in
                    weights.withUnsafeBytes { w in
                        output.withUnsafeMutableBufferPointer { y in
                            for (first, last) in zip(ranges, ranges.dropFirst()) {
                                tandem_linear_quant(code, avx2, x.baseAddress!, m, k, w.baseAddress!, n, first, last, y.baseAddress!)
                            }
                        }
                    }
                }
                XCTAssert(output.allSatisfy(\.isFinite), "\(label) avx2 \(avx2) ranges \(ranges): every output written")
                let worst = zip(output, expected).map { abs(Double($0) - $1) }.max()!
                XCTAssertLessThan(worst, 1e-5 * scale, "\(label) avx2 \(avx2) ranges \(ranges)")
            }
        }
    }

    private struct ExpectedK: Decodable {
        let values: [Double]
        let input_blocks: String
        let product_quantized_inputs: [Double]
    }

    /// Random k-quant super-blocks (any bytes are a block; the fp16 scales set to moderate values, one super-block
    /// all zero): dequantized as the gguf package does, inputs quantized to Q8_K byte for byte as ggml's reference
    /// writes them (written in numpy from its description), and products within 1e-5 of the float64 product, for
    /// the integer kernel's rows and the sgemm path's.
    func testKQuantsMatchTheGGUFPackage() throws {
        let (n, k) = (12, 512)
        var generator = SeededGenerator(seed: 21)
        for format in [WeightQuantization.q4_K, .q6_K] {
            var blocks = (0..<(n * format.rowBytes(columns: k))).map { _ in UInt8.random(in: 0...255, using: &generator) }
            let perBlock = format.blockBytes
            for block in 0..<(blocks.count / perBlock) {
                let base = block * perBlock
                let scales = format == .q4_K ? [base, base + 2] : [base + perBlock - 2]
                for offset in scales {
                    let half = HalfConversion.float16Bits(from: Float.random(in: 1e-3...2e-2, using: &generator))
                    (blocks[offset], blocks[offset + 1]) = (UInt8(half & 0xFF), UInt8(half >> 8))
                }
            }
            for index in 0..<perBlock { blocks[perBlock + index] = 0 }  // row 0's second super-block: all zero
            // The kernel multiplies the weight interleaved: one group of 8 rows here, 4 rows past it.
            let code: Int32 = format == .q4_K ? TANDEM_Q4_K : TANDEM_Q6_K
            let interleaved = checkedInterleave(blocks, format, code: code, rows: n, columns: k)
            for m in [1, 3, 8, 9, 64, 65] {  // 65: past q6_K's 64 rows in integers, to sgemm
                var inputs = (0..<(m * k)).map { _ in Self.gaussian(&generator) }
                for index in 0..<256 { inputs[index] = 0 }  // an all-zero input block
                let directory = try Reference.temporaryDirectory(self)
                let (blocksFile, inputsFile) = (directory.appendingPathComponent("blocks.bin"), directory.appendingPathComponent("inputs.f32"))
                try Data(blocks).write(to: blocksFile)
                try inputs.withUnsafeBytes { try Data($0).write(to: inputsFile) }
                let expected = try JSONDecoder().decode(
                    ExpectedK.self,
                    from: Reference.python("quant_reference.py", ["blocks", format.rawValue, blocksFile.path, String(n), String(k), inputsFile.path, String(m)]))
                XCTAssertEqual(format.dequantize(blocks, rows: n, columns: k).map(Double.init), expected.values, "\(format): dequantized")
                var quantizedInputs = [UInt8](repeating: 0, count: m * k / 256 * 292)
                inputs.withUnsafeBufferPointer { x in
                    quantizedInputs.withUnsafeMutableBytes { out in
                        for row in 0..<m { tandem_quantize_row(TANDEM_Q8_K, x.baseAddress! + row * k, k, out.baseAddress! + row * k / 256 * 292) }
                    }
                }
                XCTAssertEqual(Self.hex(quantizedInputs), expected.input_blocks, "\(format) m \(m): Q8_K inputs")
                let scale = expected.product_quantized_inputs.map(abs).max()!
                checkKernel(code, "\(format) m \(m)", inputs: quantizedInputs, weights: interleaved, m: m, n: n, k: k, cuts: [0, 3, 9, n], expected: expected.product_quantized_inputs)
                let weight = LinearWeight(blocks: blocks, quantization: format, outputSize: n, inputSize: k, threads: 2)
                let output = Tensor(zeros: [m, n], dtype: .float32)
                weight.apply(Tensor(inputs, shape: [m, k]), into: output)
                let worst = (0..<(m * n)).map { abs(Double(output.floats[$0]) - expected.product_quantized_inputs[$0]) }.max()!
                XCTAssertLessThan(worst, 1e-5 * scale, "\(format) m \(m) through LinearWeight")
            }
        }
    }

    /// Rows quantized to Q4_K and Q6_K hold the bytes ggml's quantize_row_q4_K_ref / quantize_row_q6_K_ref choose
    /// (the numpy reference's), block by block, and dequantize to the gguf package's values. Besides random
    /// normals: the specials above (a zero sub-block, an outlier, a negative peak, fp16-subnormal and tiny scales,
    /// constant and rounding-boundary blocks), a sub-block with no negative value (the fitted minimum 0), one
    /// all negative, a whole super-block of zeros, and rows whose scale varies a thousandfold between sub-blocks.
    func testKQuantizersWriteGGMLsBytes() throws {
        let (rows, columns) = (6, 768)  // 18 super-blocks
        var values = Self.weights(rows: rows, columns: columns, seed: 31)
        let start = 9 * 32
        values.replaceSubrange(start..<(start + 32), with: (0..<32).map { Float($0 % 5) * 0.3 + 0.1 })
        values.replaceSubrange((start + 32)..<(start + 64), with: (0..<32).map { -Float($0 % 6) * 0.2 - 0.05 })
        values.replaceSubrange(768..<1024, with: [Float](repeating: 0, count: 256))
        for index in (2 * columns)..<(3 * columns) { values[index] *= Float(pow(10.0, Double(index / 32 % 4) - 2)) }
        for format in [WeightQuantization.q4_K, .q6_K] {
            let directory = try Reference.temporaryDirectory(self)
            let weightsFile = directory.appendingPathComponent("weights.f32")
            try values.withUnsafeBytes { try Data($0).write(to: weightsFile) }
            let expected = try JSONDecoder().decode(
                Expected.self, from: Reference.python("quant_reference.py", ["quantize", format.rawValue, weightsFile.path, String(rows), String(columns)]))
            let bytes = values.withUnsafeBufferPointer { format.quantize($0.baseAddress!, rows: rows, columns: columns) }
            XCTAssertEqual(bytes.count, rows * format.rowBytes(columns: columns), "\(format)")
            let blockHex = format.blockBytes * 2
            let (mine, theirs) = (Array(Self.hex(bytes)), Array(expected.bytes))
            XCTAssertEqual(mine.count, theirs.count, "\(format)")
            var differing: [Int] = []
            for block in 0..<(rows * columns / 256) where mine.count == theirs.count {
                let range = (block * blockHex)..<((block + 1) * blockHex)
                if mine[range] != theirs[range] { differing.append(block) }
            }
            XCTAssertEqual(differing, [], "\(format): super-blocks whose bytes differ from ggml's")
            XCTAssertEqual(format.dequantize(bytes, rows: rows, columns: columns).map(Double.init), expected.values, "\(format): dequantized")
            // The blocks are a close fit: every value within its sub-block's step (Q4_K: range / 15 plus rounding of
            // the 6-bit scales; checked loosely as a quarter of the row's largest magnitude).
            let decoded = format.dequantize(bytes, rows: rows, columns: columns)
            for row in 0..<rows {
                let slice = (row * columns)..<((row + 1) * columns)
                let peak = values[slice].map(abs).max()!
                let worst = slice.map { abs(decoded[$0] - values[$0]) }.max()!
                XCTAssertLessThan(worst, 0.25 * peak, "\(format) row \(row)")
            }
        }
    }
}
