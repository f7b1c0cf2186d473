import Foundation
import TandemComm
import TandemTestSupport
import XCTest

/// The MPI backend (`TANDEM_BACKEND=mpi`) in real processes started by OpenMPI's `mpirun`: every collective of
/// the API against its closed form (the worker's `matrix` scenario, also run on TCP and shared memory under
/// mpirun so the scenario itself is checked against the backends tested elsewhere), the failure model, and the
/// refusals. A build without the `MPI` trait checks that it refuses the backend by name instead.
final class MPIBackendTests: XCTestCase {
    /// `mpirun -np ranks tandem-test-worker scenario`, as root too.
    private func mpirun(_ ranks: Int, _ scenario: [String], backend: BackendChoice, environment: [String: String] = [:]) throws -> BuiltProgram.Run {
        var settings = [
            "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1", "TANDEM_JOB_TOKEN": "",
            TandemEnvironment.backend.name: backend.rawValue,
        ]
        for (key, value) in environment { settings[key] = value }
        return try BuiltProgram.run(
            "/usr/bin/env", ["mpirun", "--oversubscribe", "-np", String(ranks), BuiltProgram.worker] + scenario, environment: settings, timeout: 300)
    }

    #if MPI
    func testEveryCollectiveMatchesItsClosedFormOnMPI() throws {
        let runs: [(Int, BackendChoice, MPIWait)] = [(4, .mpi, .deadline), (3, .mpi, .deadline), (2, .mpi, .deadline), (3, .mpi, .blocking), (4, .tcp, .deadline), (4, .shm, .deadline)]
        for (ranks, backend, wait) in runs {
            let run = try mpirun(ranks, ["matrix"], backend: backend, environment: [TandemEnvironment.mpiWait.name: wait.rawValue])
            XCTAssertEqual(run.status, 0, run.output)
            for rank in 0..<ranks {
                let line = run.lines(containing: "RESULT rank=\(rank) world=\(ranks) backend=\(backend.rawValue) ").first
                XCTAssertNotNil(line, "\(backend) \(wait) × \(ranks): rank \(rank) did not report: \(run.output)")
                guard let line else { continue }
                XCTAssertTrue(line.contains(" wrong=0 "), "\(backend) \(wait) × \(ranks): \(line)")
                // 6 dtypes × 5 sizes × (12 + one broadcast per root) checks at least, then objects and the split.
                let checks = line.split(separator: " ").first { $0.hasPrefix("checks=") }.flatMap { Int($0.dropFirst("checks=".count)) } ?? 0
                XCTAssertGreaterThanOrEqual(checks, 6 * 5 * (12 + ranks), line)
            }
        }
    }

    /// A rank killed mid-all-reduce: MPI itself would wait forever; the group's liveness connection ends every
    /// survivor's MPI wait with `peerLost` naming it, within the 2 s the other backends are held to.
    func testKillNineOfARankMidCollectiveEndsMPIWaitsWithPeerLost() throws {
        let run = try mpirun(3, ["kill-mid-collective", "1"], backend: .mpi)
        guard let victim = run.lines(containing: "VICTIM rank=1").first, let killedAt = milliseconds(in: victim) else {
            return XCTFail("victim did not report: \(run.output)")
        }
        let errors = run.lines(containing: "ERROR kind=")
        XCTAssertEqual(errors.count, 2, run.output)
        for line in errors {
            XCTAssertTrue(line.contains("kind=peerLost rank=1"), line)
            if let detectedAt = milliseconds(in: line) { XCTAssertLessThan(detectedAt - killedAt, 2000, line) }
        }
    }

    /// MPI does not compare the sizes ranks pass to a collective: mismatched sizes end as MPI's own error or at
    /// the deadline (3 s here) — never a hang — on every rank.
    func testMismatchedSizesEndByTheDeadlineOnMPI() throws {
        let run = try mpirun(2, ["mismatch-size"], backend: .mpi, environment: [TandemEnvironment.commTimeout.name: "3"])
        XCTAssertEqual(run.lines(containing: "ERROR kind=").count, 2, run.output)
        XCTAssertLessThan(run.seconds, 30, run.output)
        for line in run.lines(containing: "ERROR kind=") {
            XCTAssertTrue(["kind=library", "kind=timeout", "kind=peerAborted"].contains { line.contains($0) }, line)
        }
    }

    /// An unknown `TANDEM_MPI_WAIT` is refused at start, naming the variable and the choices.
    func testAnUnknownMPIWaitIsRefusedByName() throws {
        let run = try mpirun(2, ["collectives"], backend: .mpi, environment: [TandemEnvironment.mpiWait.name: "sometimes"])
        XCTAssertNotEqual(run.status, 0, run.output)
        XCTAssertEqual(run.lines(containing: "ERROR kind=init").filter { $0.contains("TANDEM_MPI_WAIT") && $0.contains("deadline, blocking") }.count, 2, run.output)
    }

    /// Ranks that are not one MPI job (here started by `tandem launch`, each its own MPI world of one) are
    /// refused at setup, naming the duplicated MPI rank.
    func testRanksOutsideOneMPIJobAreRefusedByName() throws {
        let run = try BuiltProgram.run(
            BuiltProgram.tandem, ["launch", "--nproc-per-node", "2", "--master-port", "0", "--", BuiltProgram.worker, "collectives"],
            environment: [TandemEnvironment.backend.name: "mpi"])
        XCTAssertNotEqual(run.status, 0, run.output)
        let errors = run.lines(containing: "ERROR kind=init")
        XCTAssertFalse(errors.isEmpty, run.output)
        for line in errors {
            XCTAssertTrue(line.contains("needs every rank in one MPI job") && line.contains("are both MPI rank 0"), line)
        }
    }
    #else
    func testABuildWithoutTheMPITraitRefusesTheMPIBackendByName() throws {
        XCTAssertFalse(BackendChoice.buildHasMPI)
        let run = try BuiltProgram.run(
            BuiltProgram.tandem, ["launch", "--nproc-per-node", "2", "--master-port", "0", "--", BuiltProgram.worker, "collectives"],
            environment: [TandemEnvironment.backend.name: "mpi"])
        XCTAssertNotEqual(run.status, 0, run.output)
        XCTAssertFalse(run.lines(containing: "this build has no MPI backend: build with `swift build --traits MPI`").isEmpty, run.output)
    }
    #endif

    private func milliseconds(in line: String) -> Int64? {
        line.split(separator: " ").first { $0.hasPrefix("at_ms=") }.flatMap { Int64($0.dropFirst("at_ms=".count)) }
    }
}
