import TandemTensor
import XCTest

/// Row views see the elements a row-major layout puts there, for 2-D and higher-rank tensors.
final class TensorRowsTests: XCTestCase {
    func testRowsAndColumnsViewTheRowMajorElements() {
        // [2, 3, 4]: 6 rows of 4; element (i, j, k) holds 100 i + 10 j + k.
        var values: [Float] = []
        for i in 0..<2 { for j in 0..<3 { for k in 0..<4 { values.append(Float(100 * i + 10 * j + k)) } } }
        let tensor = Tensor(values, shape: [2, 3, 4])
        XCTAssertEqual(tensor.rowWidth, 4)
        XCTAssertEqual(tensor.rowCount, 6)
        XCTAssertEqual(Array(tensor.row(4)), [110, 111, 112, 113])
        XCTAssertEqual(Array(tensor.row(5, columns: 1..<3)), [121, 122])
        XCTAssertEqual(Array(tensor.rows(2..<4)), [20, 21, 22, 23, 100, 101, 102, 103])
        XCTAssertEqual(tensor.rows(3..<3).count, 0)

        let target = Tensor(zeros: [3, 4], dtype: .float32)
        target.row(1, columns: 2..<4).copy(from: tensor.row(5, columns: 0..<2))
        XCTAssertEqual(target.toDoubles(), [0, 0, 0, 0, 0, 0, 120, 121, 0, 0, 0, 0])
    }
}
