import TandemComm
import TandemTensor
import XCTest

final class SmokeTests: XCTestCase {
    func testAllReduceSumsAcrossFourRanks() throws {
        let results = try ThreadLauncher.run(worldSize: 4, options: ProcessGroupOptions(timeout: 20)) { group in
            let tensor = Tensor(converting: (0..<1000).map { Double($0 + group.rank) }, dtype: .float32)
            try group.allReduce(tensor)
            let big = Tensor(converting: (0..<300_001).map { Double(($0 % 7) * (group.rank + 1)) }, dtype: .float32)
            try group.allReduce(big)
            return (tensor.toDoubles(), big.toDoubles())
        }
        for result in results {
            let (small, big) = try result.get()
            XCTAssertEqual(small, (0..<1000).map { Double(4 * $0 + 6) })
            XCTAssertEqual(big, (0..<300_001).map { Double(($0 % 7) * 10) })
        }
    }
}
