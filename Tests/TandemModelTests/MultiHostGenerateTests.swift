import Foundation
import TandemTestSupport
import XCTest

/// `tandem generate` across two hosts (`TwoHosts`: network namespaces), two ranks on each: tp 4 (shared memory
/// inside each host and TCP between them), tp 2 inside each host × pp 2 across them (the stage link crosses
/// hosts), and a replica per host (dp 2 of tp 2: the front end's link to replica 1 crosses hosts) — the same
/// greedy tokens as one rank.
final class MultiHostGenerateTests: XCTestCase {
    func testGenerateAcrossTwoHostsMatchesOneRank() throws {
        try check(layout: ["--tp", "4"])
    }

    func testPipelineStagesOnTwoHostsMatchOneRank() throws {
        try check(layout: ["--tp", "2", "--pp", "2"])
    }

    func testDataParallelReplicaPerHostMatchesOneRank() throws {
        try check(layout: ["--tp", "2", "--dp", "2"])
    }

    private func check(layout: [String]) throws {
        let hosts = try TwoHosts(self)
        let directory = try Reference.temporaryDirectory(self).appendingPathComponent("tiny").path
        let made = try BuiltProgram.run(BuiltProgram.tandem, ["make-model", "--out", directory, "--preset", "tiny"])
        XCTAssertEqual(made.status, 0, made.output)
        let arguments = [
            "--model", directory, "--prompt", "Hello across hosts", "--prompt", "Stages on two hosts", "--max-tokens", "10", "--temperature", "0",
            "--ignore-eos", "--json",
        ]
        let single = try BuiltProgram.run(BuiltProgram.tandem, ["generate"] + arguments)
        XCTAssertEqual(single.status, 0, single.output)
        let runs = try hosts.launch([BuiltProgram.tandem, "generate", "--threads", "1"] + layout + arguments, perHost: 2, token: "generate-job-token-\(getpid())")
        XCTAssertEqual(runs[0].status, 0, runs[0].output)
        XCTAssertEqual(runs[1].status, 0, runs[1].output)
        // Rank 0 (on the first host) reports; its outputs are those of one rank.
        func outputs(_ text: String) throws -> Data {
            let line = try XCTUnwrap(text.split(separator: "\n").first { $0.contains("{\"outputs\"") }, text)
            let object = try JSONSerialization.jsonObject(with: Data(line[line.firstIndex(of: "{")!...].utf8)) as! [String: Any]
            return try JSONSerialization.data(withJSONObject: object["outputs"]!, options: [.sortedKeys])
        }
        XCTAssertEqual(try outputs(runs[0].output), try outputs(single.output))
    }
}
