import TandemParallel
import XCTest

/// Every expert has exactly one home under both placements, for counts that divide and that do not.
final class ExpertPlacementTests: XCTestCase {
    func testEveryExpertHasOneHome() {
        for placement in ExpertPlacement.allCases {
            for ranks in 1...8 {
                for experts in [1, 2, 6, 8, 60, 64] {
                    let held = (0..<ranks).map { placement.experts(of: $0, ranks: ranks, experts: experts) }
                    XCTAssertEqual(held.flatMap { $0 }.sorted(), Array(0..<experts), "\(placement) \(experts) over \(ranks)")
                    let counts = held.map(\.count)
                    XCTAssertLessThanOrEqual(counts.max()! - counts.min()!, 1, "\(placement) \(experts) over \(ranks): \(counts)")
                }
            }
        }
    }

    func testPlacementsAsVLLMLaysThemOut() {
        XCTAssertEqual((0..<4).map { ExpertPlacement.linear.experts(of: $0, ranks: 4, experts: 6) }, [[0, 1], [2, 3], [4], [5]])
        XCTAssertEqual((0..<4).map { ExpertPlacement.roundRobin.experts(of: $0, ranks: 4, experts: 6) }, [[0, 4], [1, 5], [2], [3]])
        XCTAssertEqual(ExpertPlacement(rawValue: "round_robin"), .roundRobin)
    }
}
