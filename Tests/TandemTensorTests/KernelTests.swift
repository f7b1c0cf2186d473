import Foundation
import TandemTensor
import XCTest

/// The decoder kernels against their defining formulas, evaluated in Double.
final class KernelTests: XCTestCase {
    func testRMSNormMatchesItsFormulaWithAHalfPrecisionWeight() {
        let (rows, d) = (3, 10)
        let values = (0..<(rows * d)).map { sin(Double($0)) * 3 }
        let weights = (0..<d).map { 0.5 + Double($0) / 8 }  // exact in bf16
        let output = Tensor(zeros: [rows, d], dtype: .float32)
        RMSNorm.apply(
            Tensor(converting: values, shape: [rows, d], dtype: .float32), weight: Tensor(converting: weights, dtype: .bfloat16),
            epsilon: 1e-5, into: output)
        for row in 0..<rows {
            let slice = values[(row * d)..<((row + 1) * d)].map { Double(Float($0)) }
            let rms = (slice.map { $0 * $0 }.reduce(0, +) / Double(d) + 1e-5).squareRoot()
            for index in 0..<d {
                XCTAssertEqual(output.element(row * d + index), slice[index] / rms * weights[index], accuracy: 1e-5)
            }
        }
    }

    /// The vector kernel (AVX2, polynomial e^x) and the portable loop against the formula in Double, over gates
    /// from −100 to 100 (e^−g far beyond fp32's range at both ends) and a row length that is not a multiple of 8.
    func testSiluAndMultiplyOverTheWholeRangeOnBothPaths() {
        let n = 203
        let gates = (0..<n).map { -100 + 200 * Double($0) / Double(n - 1) }
        let ups = (0..<n).map { 0.5 + Double($0 % 7) }
        let gateUp = Tensor(converting: gates + ups, shape: [1, 2 * n], dtype: .float32)
        for vector in [true, false] {
            let previous = Matmul.useVectorExtensions(vector)
            defer { Matmul.useVectorExtensions(previous) }
            let output = Tensor(zeros: [1, n], dtype: .float32)
            Activation.siluAndMultiply(gateUp, into: output)
            for index in 0..<n {
                let g = Double(Float(gates[index]))
                let expected = g / (1 + exp(-g)) * ups[index]
                XCTAssertEqual(output.element(index), expected, accuracy: 2e-6 * max(1, abs(expected)), "gate \(g), vector \(vector)")
            }
        }
    }

    func testSiluAndMultiplyAndSoftmax() {
        let gateUp = Tensor(converting: [-2, 0, 3, 1.5, 2, -1, 0.5, 4], shape: [2, 4], dtype: .float32)
        let output = Tensor(zeros: [2, 2], dtype: .float32)
        Activation.siluAndMultiply(gateUp, into: output)
        let silu = { (g: Double) in g / (1 + exp(-g)) }
        let expected = [silu(-2) * 3, silu(0) * 1.5, silu(2) * 0.5, silu(-1) * 4]
        for (index, value) in expected.enumerated() { XCTAssertEqual(output.element(index), value, accuracy: 1e-6) }

        var logits: [Float] = [1000, 1001, 999, -5]  // would overflow without the max shift
        logits.withUnsafeMutableBufferPointer { Activation.softmax($0.baseAddress!, count: 4) }
        let exps = [1000.0, 1001, 999, -5].map { exp($0 - 1001) }
        for (index, value) in exps.enumerated() {
            XCTAssertEqual(Double(logits[index]), value / exps.reduce(0, +), accuracy: 1e-6)
        }
    }

    func testRotaryRotatesHalvesAndScalesFrequenciesLikeTransformers() {
        let rope = RotaryEmbedding(dimension: 4, theta: 10_000, scaling: .none)
        XCTAssertEqual(rope.inverseFrequencies, [1, 0.01])
        var head: [Float] = [1, 2, 3, 4]  // pairs (1, 3) at θ 1 and (2, 4) at θ 0.01
        head.withUnsafeMutableBufferPointer { rope.apply($0.baseAddress!, heads: 1, position: 5) }
        let (a, b) = (5.0, 0.05)
        let expected = [1 * cos(a) - 3 * sin(a), 2 * cos(b) - 4 * sin(b), 3 * cos(a) + 1 * sin(a), 4 * cos(b) + 2 * sin(b)]
        for (index, value) in expected.enumerated() { XCTAssertEqual(Double(head[index]), value, accuracy: 1e-5) }

        XCTAssertEqual(RotaryEmbedding(dimension: 4, theta: 10_000, scaling: .linear(factor: 4)).inverseFrequencies, [0.25, 0.0025])
        // Llama 3.1 scaling (factor 8, low 1, high 4, original 8192): short wavelengths kept, long ones ÷ 8,
        // and the band between blended.
        let llama3 = RotaryEmbedding(
            dimension: 128, theta: 500_000,
            scaling: .llama3(factor: 8, lowFrequencyFactor: 1, highFrequencyFactor: 4, originalMaxPositions: 8192))
        let plain = RotaryEmbedding(dimension: 128, theta: 500_000, scaling: .none)
        for (scaled, base) in zip(llama3.inverseFrequencies, plain.inverseFrequencies) {
            let wavelength = 2 * Double.pi / base
            if wavelength < 8192.0 / 4 {
                XCTAssertEqual(scaled, base)
            } else if wavelength > 8192 {
                XCTAssertEqual(scaled, base / 8, accuracy: base * 1e-12)
            } else {
                XCTAssertTrue(scaled < base && scaled > base / 8)
            }
        }
    }
}
