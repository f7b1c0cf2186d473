import Foundation
import TandemModel
import TandemTestSupport
import XCTest

/// `tandem info --layout`: each rank's coordinates, host, tensor-parallel group and layers, worked out by hand
/// for dp 2 × pp 2 × tp 2 over a 4-layer model on two hosts of 4; bad layouts refused with their numbers.
final class InfoLayoutTests: XCTestCase {
    func testLayoutTableAndRefusals() throws {
        let directory = try ModelFixtures.write(.tiny, test: self)
        let config = URL(fileURLWithPath: directory).appendingPathComponent("config.json")
        var fields = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: config)) as? [String: Any])
        fields["num_hidden_layers"] = 5
        try JSONSerialization.data(withJSONObject: fields).write(to: config)
        let run = try BuiltProgram.run(
            BuiltProgram.tandem, ["info", "--layout", "--tp", "2", "--pp", "2", "--dp", "2", "--nproc-per-node", "4", "--model", directory])
        XCTAssertEqual(run.status, 0, run.output)
        let rows = run.output.split(separator: "\n").dropFirst(2).map { $0.split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ") }
        // 5 layers over 2 stages: 2 each, and vLLM gives the remainder to the stage before the last: 3 and 2.
        XCTAssertEqual(rows, [
            "0 0 0 0 0 [0,1] embedding, layers 0–2", "1 0 0 1 0 [0,1] embedding, layers 0–2", "2 0 1 0 0 [2,3] layers 3–4, norm, LM head",
            "3 0 1 1 0 [2,3] layers 3–4, norm, LM head", "4 1 0 0 1 [4,5] embedding, layers 0–2", "5 1 0 1 1 [4,5] embedding, layers 0–2",
            "6 1 1 0 1 [6,7] layers 3–4, norm, LM head", "7 1 1 1 1 [6,7] layers 3–4, norm, LM head",
        ])
        XCTAssertTrue(run.output.hasPrefix("world 8 = dp 2 × pp 2 × tp 2, 4 rank(s) per host; layers per stage 3,2"), run.output)

        for (arguments, environment, message) in [
            (["--pp", "6"], [:], "pp 6 is more than the model's 5 layers"),
            (["--pp", "2"], ["TANDEM_PP_LAYER_PARTITION": "1,3"], "sums to 4 layers (1,3), the model has 5"),
            (["--tp", "3"], [:], "tensor parallel size 3 does not split 4 attention heads"),
        ] as [([String], [String: String], String)] {
            let refused = try BuiltProgram.run(BuiltProgram.tandem, ["info", "--layout", "--model", directory] + arguments, environment: environment)
            XCTAssertNotEqual(refused.status, 0, refused.output)
            XCTAssertTrue(refused.output.contains(message), refused.output)
        }
        let stray = try BuiltProgram.run(BuiltProgram.tandem, ["info", "--tp", "2"])
        XCTAssertNotEqual(stray.status, 0)
        XCTAssertTrue(stray.output.contains("go with --layout"), stray.output)
    }

    /// A MoE model: a slice of every expert per rank, or whole experts placed over the stage's tp ranks
    /// (round-robin over 8 experts and tp 2: tp rank t holds t, t + 2, …) — with dp > 1 over its dp × tp ranks
    /// across the replicas, as the engine runs them (replica d's tp rank t is expert rank 2d + t); refused on a
    /// dense model.
    func testExpertsPerRank() throws {
        let moe = try ModelFixtures.write(.tinyMoE, test: self)
        let split = try BuiltProgram.run(BuiltProgram.tandem, ["info", "--layout", "--tp", "2", "--model", moe])
        XCTAssertEqual(split.status, 0, split.output)
        XCTAssertEqual(split.lines(containing: "| all 8, 1/2 of each").count, 2, split.output)
        func experts(_ layout: [String]) throws -> [String] {
            let placed = try BuiltProgram.run(
                BuiltProgram.tandem, ["info", "--layout", "--model", moe, "--enable-expert-parallel", "--expert-placement", "round_robin"] + layout)
            XCTAssertEqual(placed.status, 0, placed.output)
            return placed.output.split(separator: "\n").dropFirst(2).map { $0.components(separatedBy: "| ").last! }
        }
        XCTAssertEqual(try experts(["--tp", "2"]), ["0,2,4,6 of 8, whole", "1,3,5,7 of 8, whole"])
        XCTAssertEqual(try experts(["--tp", "2", "--dp", "2"]), ["0,4 of 8, whole", "1,5 of 8, whole", "2,6 of 8, whole", "3,7 of 8, whole"])
        XCTAssertEqual(
            try experts(["--pp", "2", "--dp", "2"]), ["0,2,4,6 of 8, whole", "0,2,4,6 of 8, whole", "1,3,5,7 of 8, whole", "1,3,5,7 of 8, whole"])
        let dense = try BuiltProgram.run(
            BuiltProgram.tandem, ["info", "--layout", "--tp", "2", "--model", try ModelFixtures.write(.tiny, test: self), "--enable-expert-parallel"])
        XCTAssertNotEqual(dense.status, 0)
        XCTAssertTrue(dense.output.contains("is a dense model (model_type llama, no num_local_experts)"), dense.output)
    }
}
