import Foundation
import TandemTensor
import XCTest

/// The bfloat16 kernel (weights packed at load, activations rounded to bfloat16, fp32 sums) against the same
/// products evaluated in Double from the rounded values: ragged shapes (k odd, n not a multiple of 16, m not a
/// multiple of 8, m past one 256-row chunk), 16-bit and fp32 checkpoints, one and two threads.
final class LinearWeightTests: XCTestCase {
    private func bfloat(_ value: Float) -> Double { Double(HalfConversion.float(fromBFloat16: HalfConversion.bfloat16Bits(from: value))) }

    private func check(m: Int, n: Int, k: Int, dtype: DType, threads: Int) throws {
        try XCTSkipUnless(ComputePrecision.bfloat16Available, "this CPU has no AVX-512 BF16; the bfloat16 kernel cannot run here")
        let weights = (0..<(n * k)).map { sin(Double($0) * 0.61) }
        let inputs = (0..<(m * k)).map { Float(cos(Double($0) * 0.29)) }
        let tensor = Tensor(converting: weights, shape: [n, k], dtype: dtype)
        let weight = LinearWeight(tensor, precision: .bfloat16, threads: threads)
        let output = Tensor(zeros: [m, n], dtype: .float32)
        weight.apply(Tensor(inputs, shape: [m, k]), into: output)
        var worst = 0.0
        for row in 0..<m {
            for column in 0..<n {
                var expected = 0.0
                for index in 0..<k { expected += bfloat(inputs[row * k + index]) * bfloat(Float(tensor.element(column * k + index))) }
                worst = max(worst, abs(output.element(row * n + column) - expected))
            }
        }
        XCTAssertLessThan(worst, 1e-4 * Double(k).squareRoot(), "m \(m) n \(n) k \(k) \(dtype) threads \(threads)")
        XCTAssertEqual(weight.byteCount, ((n + 15) / 16 * 16) * ((k + 1) / 2 * 2) * 2, "rows padded to 16, k to even, 2 bytes each")
    }

    func testRaggedShapesMatchTheProductsOfTheRoundedValues() throws {
        for (m, n, k) in [(1, 1, 1), (3, 17, 33), (9, 50, 64), (8, 48, 31), (300, 40, 70)] {
            try check(m: m, n: n, k: k, dtype: .bfloat16, threads: 1)
        }
    }

    func testFloat32WeightsAreRoundedThenPackedAndTwoThreadsAgree() throws {
        try check(m: 5, n: 400, k: 96, dtype: .float32, threads: 2)
        try check(m: 12, n: 33, k: 20, dtype: .float16, threads: 1)
    }

    func testFloat32PrecisionKeepsTheCheckpointTensor() {
        let tensor = Tensor(converting: [1, 2, 3, 4, 5, 6], shape: [2, 3], dtype: .bfloat16)
        let weight = LinearWeight(tensor, precision: .float32)
        let output = Tensor(zeros: [1, 2], dtype: .float32)
        weight.apply(Tensor([1, 1, 1], shape: [1, 3]), into: output)
        XCTAssertEqual(output.toDoubles(), [6, 15])
        XCTAssertEqual(weight.byteCount, 12)
    }
}
