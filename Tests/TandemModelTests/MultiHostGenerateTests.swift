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

    /// One rank per host on a link with a delay (`tandem-shaper`: 1 Gbit/s, 2 ms one way), tensor-parallel and as
    /// pipeline stages: every all-reduce and stage send waits on the delayed link, and the greedy tokens are still
    /// one rank's.
    func testTensorParallelAndStagesAcrossADelayedLinkMatchOneRank() throws {
        try check(layout: ["--tp", "2"], perHost: 1, shape: .init(rate: "1gbit", delay: "2ms"))
        try check(layout: ["--pp", "2"], perHost: 1, shape: .init(rate: "1gbit", delay: "2ms"))
    }

    /// The same job started by one OpenMPI `mpirun` across both hosts (its daemon reaches the second host through
    /// an rsh agent, as over ssh): on the default backends (hierarchical: shared memory per host, TCP between) and,
    /// in a build with the MPI trait, on the MPI backend — every group an MPI communicator spanning the hosts.
    func testMpirunAcrossTwoHostsMatchesOneRank() throws {
        var backends = ["auto"]
        #if MPI
        backends.append("mpi")
        #endif
        for backend in backends { try check(layout: ["--tp", "2", "--pp", "2"], mpirunBackend: backend) }
    }

    private func check(layout: [String], perHost: Int = 2, shape: TwoHosts.Shape? = nil, mpirunBackend: String? = nil) throws {
        let hosts = try TwoHosts(self, shape: shape)
        let directory = try Reference.temporaryDirectory(self).appendingPathComponent("tiny").path
        let made = try BuiltProgram.run(BuiltProgram.tandem, ["make-model", "--out", directory, "--preset", "tiny"])
        XCTAssertEqual(made.status, 0, made.output)
        let arguments = [
            "--model", directory, "--prompt", "Hello across hosts", "--prompt", "Stages on two hosts", "--max-tokens", "10", "--temperature", "0",
            "--ignore-eos", "--json",
        ]
        let single = try BuiltProgram.run(BuiltProgram.tandem, ["generate"] + arguments)
        XCTAssertEqual(single.status, 0, single.output)
        let program = [BuiltProgram.tandem, "generate", "--threads", "1"] + layout + arguments
        let runs: [BuiltProgram.Run]
        if let mpirunBackend {
            let run = try hosts.mpirun(
                program, perHost: 2, in: try Reference.temporaryDirectory(self),
                environment: ["TANDEM_BACKEND": mpirunBackend, "TANDEM_LOG_LEVEL": "info"])
            let expected = mpirunBackend == "mpi" ? "backend mpi" : "backend hier"
            XCTAssertEqual(run.lines(containing: "group 'world' rank").filter { $0.contains(expected) }.count, 4, run.output)
            runs = [run]
        } else {
            runs = try hosts.launch(program, perHost: perHost, token: "generate-job-token-\(getpid())")
        }
        for run in runs { XCTAssertEqual(run.status, 0, run.output) }
        // Rank 0 (on the first host) reports; its outputs are those of one rank.
        func outputs(_ text: String) throws -> Data {
            let line = try XCTUnwrap(text.split(separator: "\n").first { $0.contains("{\"outputs\"") }, text)
            let object = try JSONSerialization.jsonObject(with: Data(line[line.firstIndex(of: "{")!...].utf8)) as! [String: Any]
            return try JSONSerialization.data(withJSONObject: object["outputs"]!, options: [.sortedKeys])
        }
        XCTAssertEqual(try outputs(runs[0].output), try outputs(single.output))
    }
}
