import TandemTensor
import XCTest

final class ReductionTests: XCTestCase {
    func testEveryOpAndDtypeMatchesDoubleArithmetic() {
        let left: [Double] = [1, -2, 3.5, 0, 7, -8, 100, 2]
        let right: [Double] = [4, 5, -0.5, -3, 7, 2, 27, -64]
        for dtype in DType.allCases {
            for op in ReduceOp.allCases where op != .avg {
                let a = Tensor(converting: left, dtype: dtype)
                let b = Tensor(converting: right, dtype: dtype)
                let expectedValues = zip(a.toDoubles(), b.toDoubles()).map { x, y -> Double in
                    switch op {
                    case .sum, .avg: x + y
                    case .product: x * y
                    case .max: max(x, y)
                    case .min: min(x, y)
                    }
                }
                Reduction.combine(op, dtype: dtype, into: a.baseAddress, from: b.baseAddress, count: a.count)
                let expected = Tensor(converting: expectedValues, dtype: dtype)
                XCTAssertTrue(a.isBitwiseEqual(to: expected), "\(op) \(dtype): \(a.toDoubles()) vs \(expected.toDoubles())")
            }
        }
    }

    func testIntegerSumsWrapLikeTorch() {
        let a = Tensor(converting: [127, -128], dtype: .int8)
        let b = Tensor(converting: [1, -1], dtype: .int8)
        Reduction.combine(.sum, dtype: .int8, into: a.baseAddress, from: b.baseAddress, count: 2)
        XCTAssertEqual(a.toDoubles(), [-128, 127])
    }

    func testHalfSumsRoundOnceFromFloat() {
        // 256 + 1 is not representable in bfloat16 (8 significant bits): the fp32 sum 257 rounds to even (256).
        let a = Tensor(converting: [256, 1], dtype: .bfloat16)
        let b = Tensor(converting: [1, 256], dtype: .bfloat16)
        Reduction.combine(.sum, dtype: .bfloat16, into: a.baseAddress, from: b.baseAddress, count: 2)
        XCTAssertEqual(a.toDoubles(), [256, 256])
    }

    func testMaxPropagatesNaN() {
        let a = Tensor([Float.nan, 1])
        let b = Tensor([1, Float.nan])
        Reduction.combine(.max, dtype: .float32, into: a.baseAddress, from: b.baseAddress, count: 2)
        XCTAssertTrue(a.toDoubles().allSatisfy(\.isNaN))
    }

    func testScaleFinishesAnAverage() {
        let a = Tensor(converting: [3, 5], dtype: .float16)
        Reduction.scale(a.baseAddress, dtype: .float16, count: 2, dividingBy: 2)
        XCTAssertEqual(a.toDoubles(), [1.5, 2.5])
    }
}
