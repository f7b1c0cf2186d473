import TandemParallel
import XCTest

final class ParallelLayoutTests: XCTestCase {
    /// vLLM's own documented example (parallel_state.py): 8 ranks, tp 2, pp 4.
    func testMatchesVLLMsDocumentedEightRankExample() throws {
        let layout = try ParallelLayout(worldSize: 8, tensorParallelSize: 2, pipelineParallelSize: 4)
        XCTAssertEqual(layout.groups(.tensor), [[0, 1], [2, 3], [4, 5], [6, 7]])
        XCTAssertEqual(layout.groups(.pipeline), [[0, 2, 4, 6], [1, 3, 5, 7]])
    }

    /// arange(8).reshape(dp=2, pp=2, tp=2), worked out by hand.
    func testMatchesAHandComputedThreeAxisLayout() throws {
        let layout = try ParallelLayout(worldSize: 8, tensorParallelSize: 2, pipelineParallelSize: 2, dataParallelSize: 2)
        XCTAssertEqual(layout.groups(.tensor), [[0, 1], [2, 3], [4, 5], [6, 7]])
        XCTAssertEqual(layout.groups(.pipeline), [[0, 2], [1, 3], [4, 6], [5, 7]])
        XCTAssertEqual(layout.groups(.data), [[0, 4], [2, 6], [1, 5], [3, 7]])
        XCTAssertEqual(layout.groups(.expert), [[0, 1, 4, 5], [2, 3, 6, 7]])
        XCTAssertEqual(layout.group(.data, containing: 6), [2, 6])
    }

    func testEveryShapeUpToEightRanksPartitionsTheWorldWithTheRightStructure() throws {
        for world in 1...8 {
            for tp in 1...world where world % tp == 0 {
                for pp in 1...(world / tp) where (world / tp) % pp == 0 {
                    let dp = world / tp / pp
                    let layout = try ParallelLayout(worldSize: world, tensorParallelSize: tp, pipelineParallelSize: pp, dataParallelSize: dp)
                    let shape = "world \(world) tp \(tp) pp \(pp) dp \(dp)"
                    for (kind, size, stride) in [(ParallelGroupKind.tensor, tp, 1), (.pipeline, pp, tp), (.data, dp, tp * pp)] {
                        let groups = layout.groups(kind)
                        XCTAssertEqual(groups.flatMap { $0 }.sorted(), Array(0..<world), "\(shape) \(kind) must cover every rank once")
                        for group in groups {
                            XCTAssertEqual(group.count, size, "\(shape) \(kind)")
                            XCTAssertEqual(zip(group, group.dropFirst()).map { $1 - $0 }, Array(repeating: stride, count: size - 1), "\(shape) \(kind) stride")
                        }
                    }
                    // A tensor group and a pipeline or data group share at most one rank.
                    for tensorGroup in layout.groups(.tensor) {
                        for other in layout.groups(.pipeline) + layout.groups(.data) {
                            XCTAssertLessThanOrEqual(Set(tensorGroup).intersection(other).count, 1, shape)
                        }
                    }
                    // The expert group of a stage is exactly the union of that stage's tensor groups.
                    let experts = layout.groups(.expert)
                    XCTAssertEqual(experts.count, pp, shape)
                    for (stage, group) in experts.enumerated() {
                        let stageRanks = (0..<dp).flatMap { d in (0..<tp).map { layout.rank(data: d, stage: stage, tensor: $0) } }
                        XCTAssertEqual(Set(group), Set(stageRanks), shape)
                        XCTAssertEqual(group.count, dp * tp, shape)
                    }
                }
            }
        }
    }

    func testInvalidSizesNameTheProblem() {
        XCTAssertThrowsError(try ParallelLayout(worldSize: 8, tensorParallelSize: 3)) { error in
            XCTAssertEqual(error as? ParallelConfigError, .productMismatch(worldSize: 8, tensor: 3, pipeline: 1, data: 1))
            XCTAssertTrue("\(error)".contains("pick sizes whose product is 8"), "\(error)")
        }
        XCTAssertThrowsError(try ParallelLayout(worldSize: 4, tensorParallelSize: 0)) { error in
            XCTAssertEqual(error as? ParallelConfigError, .nonPositive(name: "tensorParallelSize", value: 0))
        }
    }
}
