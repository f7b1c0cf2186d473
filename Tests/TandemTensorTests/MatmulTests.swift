import TandemTensor
import XCTest

/// BLAS-backed linear layers against a plain triple loop in Double precision.
final class MatmulTests: XCTestCase {
    private func reference(_ input: [Double], _ weight: [Double], m: Int, k: Int, n: Int) -> [Double] {
        var output = [Double](repeating: 0, count: m * n)
        for row in 0..<m {
            for column in 0..<n {
                var sum = 0.0
                for index in 0..<k { sum += input[row * k + index] * weight[column * k + index] }
                output[row * n + column] = sum
            }
        }
        return output
    }

    func testLinearMatchesAReferenceForEveryWeightDtypeAndAwkwardSizes() {
        // n = 300 spans two blocks of widened 16-bit rows; k and m are odd; m ≤ 4 takes the fused kernel (k with
        // and without a tail past the last 8 or 16 values, on 1 and 3 threads), 4 < m ≤ 64 the tiled one (groups
        // of four rows, a last group short; pairs of weight rows in blocks of 64, an odd one left over), larger m
        // widens for BLAS.
        // Both decode kernels: the C one where the CPU has AVX2 (else this runs the portable one twice).
        for vectorExtensions in [true, false] {
            let previous = Matmul.useVectorExtensions(vectorExtensions)
            defer { Matmul.useVectorExtensions(previous) }
            for threads in [1, 3] {
                checkLinear(threads: threads, sizes: [(1, 7, 3), (1, 24, 200), (1, 40, 7), (2, 40, 130), (4, 1029, 70), (3, 16, 1), (5, 33, 300), (17, 64, 257), (37, 41, 131), (64, 1029, 65), (6, 8, 1), (65, 24, 9)])
            }
        }
    }

    private func checkLinear(threads: Int, sizes: [(Int, Int, Int)]) {
        for (m, k, n) in sizes {
            // Small integers and halves: exact in bf16, fp16 and fp32, so the products are exact too.
            let input = (0..<(m * k)).map { Double(($0 * 7) % 11) - 5 }
            let weight = (0..<(n * k)).map { Double(($0 * 5) % 9) / 2 - 2 }
            let expected = reference(input, weight, m: m, k: k, n: n)
            for dtype in [DType.float32, .bfloat16, .float16] {
                let output = Tensor(zeros: [m, n], dtype: .float32)
                Matmul.linear(
                    Tensor(converting: input, shape: [m, k], dtype: .float32),
                    weight: Tensor(converting: weight, shape: [n, k], dtype: dtype), into: output, threads: threads)
                let actual = output.toDoubles()
                let worst = zip(actual, expected).map { abs($0 - $1) }.max() ?? 0
                XCTAssertLessThanOrEqual(worst, 1e-3, "\(dtype) m \(m) k \(k) n \(n)")
            }
        }
    }
}
