import TandemParallel
import XCTest

/// Layer splits over pipeline stages, against vLLM's get_pp_indices worked out by hand.
final class PipelinePartitionTests: XCTestCase {
    func testEvenSplitGivesTheRemainderToTheStagesBeforeTheLast() throws {
        // vLLM: 32 // 3 = 10 each; the remainder 2 goes one apiece to partitions[-2] and partitions[-3].
        XCTAssertEqual(try PipelinePartition(layerCount: 32, stages: 3).layerCounts, [11, 11, 10])
        XCTAssertEqual(try PipelinePartition(layerCount: 12, stages: 2).layerCounts, [6, 6])
        XCTAssertEqual(try PipelinePartition(layerCount: 13, stages: 4).layerCounts, [3, 3, 4, 3])
        XCTAssertEqual(try PipelinePartition(layerCount: 7, stages: 1).layerCounts, [7])
        XCTAssertEqual(try PipelinePartition(layerCount: 4, stages: 4).layerCounts, [1, 1, 1, 1])
        let partition = try PipelinePartition(layerCount: 13, stages: 4)
        XCTAssertEqual((0..<4).map { partition.layers(ofStage: $0) }, [0..<3, 3..<6, 6..<10, 10..<13])
    }

    func testGivenCountsAreChecked() throws {
        XCTAssertEqual(try PipelinePartition(layerCount: 12, stages: 2, counts: [5, 7]).layers(ofStage: 1), 5..<12)
        let cases: [(Int, Int, [Int]?, String)] = [
            (4, 5, nil, "pipeline partition: pp 5 is more than the model's 4 layers; a stage would hold no layer"),
            (12, 2, [5, 6], "pipeline partition: TANDEM_PP_LAYER_PARTITION sums to 11 layers (5,6), the model has 12"),
            (12, 2, [12], "pipeline partition: TANDEM_PP_LAYER_PARTITION lists 1 stages (12), pp is 2"),
            (12, 2, [0, 12], "pipeline partition: TANDEM_PP_LAYER_PARTITION gives a stage no layer (0,12)"),
            (12, 0, nil, "pipelineParallelSize must be ≥ 1, got 0"),
        ]
        for (layers, stages, counts, message) in cases {
            XCTAssertThrowsError(try PipelinePartition(layerCount: layers, stages: stages, counts: counts)) {
                XCTAssertEqual("\($0)", message)
            }
        }
    }

    /// `coordinates(of:)` inverts `rank(data:stage:tensor:)` on every rank of a few layouts.
    func testCoordinatesInvertTheRankFormula() throws {
        for (tp, pp, dp) in [(1, 1, 1), (2, 2, 2), (4, 1, 2), (1, 3, 2), (2, 3, 1)] {
            let layout = try ParallelLayout(worldSize: tp * pp * dp, tensorParallelSize: tp, pipelineParallelSize: pp, dataParallelSize: dp)
            for rank in 0..<(tp * pp * dp) {
                let (data, stage, tensor) = layout.coordinates(of: rank)
                XCTAssertEqual(layout.rank(data: data, stage: stage, tensor: tensor), rank)
                XCTAssertTrue(data < dp && stage < pp && tensor < tp)
            }
        }
        // By hand, dp 2 × pp 2 × tp 2: rank 5 is replica 1, stage 0, tensor index 1.
        XCTAssertTrue(try ParallelLayout(worldSize: 8, tensorParallelSize: 2, pipelineParallelSize: 2, dataParallelSize: 2).coordinates(of: 5) == (1, 0, 1))
    }
}
