import Foundation
import TandemComm
import TandemTestSupport
import XCTest

/// The paths users take: real processes started by `tandem launch`.
final class LauncherTests: XCTestCase {
    private func launch(_ ranks: Int, _ scenario: [String], backend: BackendChoice = .auto, extra: [String] = []) throws -> BuiltProgram.Run {
        try BuiltProgram.run(
            BuiltProgram.tandem,
            ["launch", "--nproc-per-node", String(ranks), "--master-port", "0"] + extra + ["--", BuiltProgram.worker] + scenario
                + (backend == .hier ? ["--fake-hosts"] : []),
            environment: [TandemEnvironment.backend.name: backend.rawValue])
    }

    /// Tandem's segments in /dev/shm (named `/tdm…`).
    private func sharedMemoryLeftovers() -> Set<String> {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: "/dev/shm")) ?? []
        return Set(names.filter { $0.hasPrefix("tdm") })
    }

    func testCollectivesAcrossFourProcessesGiveCorrectResultsWithRankPrefixes() throws {
        for backend in [BackendChoice.auto, .tcp] {
            let run = try launch(4, ["collectives"], backend: backend)
            XCTAssertEqual(run.status, 0, run.output)
            // Four processes on one host: auto picks shared memory.
            let expected = backend == .auto ? "shm" : "tcp"
            for rank in 0..<4 {
                XCTAssertEqual(
                    run.lines(
                        containing: "[rank\(rank)]: RESULT rank=\(rank) world=4 backend=\(expected) allReduce=true allGather=true objects=true"
                    ).count, 1, run.output)
            }
        }
    }

    func testParallelStateAcrossFourProcessesOnBothGroupPaths() throws {
        for useSplit in ["1", "0"] {
            let run = try BuiltProgram.run(
                BuiltProgram.tandem,
                ["launch", "--nproc-per-node", "4", "--master-port", "0", "--", BuiltProgram.worker, "parallel"],
                environment: [TandemEnvironment.useSplitGroup.name: useSplit])
            XCTAssertEqual(run.status, 0, run.output)
            for rank in 0..<4 {
                let pair = rank < 2 ? "[0, 1]" : "[2, 3]"
                XCTAssertEqual(
                    run.lines(containing: "[rank\(rank)]: RESULT rank=\(rank) tp=\(pair) tpBackend=shm tpOK=true dpOK=true").count, 1,
                    "TANDEM_USE_SPLIT_GROUP=\(useSplit): \(run.output)")
            }
        }
    }

    func testBroadcastQueueAcrossFourProcesses() throws {
        let run = try launch(4, ["queue"])
        XCTAssertEqual(run.status, 0, run.output)
        for rank in 0..<4 {
            XCTAssertEqual(run.lines(containing: "[rank\(rank)]: RESULT rank=\(rank) queue good=500 closed=true shm=true").count, 1, run.output)
        }
    }

    func testBenchGroupsTimesBothPathsForEveryShape() throws {
        let run = try BuiltProgram.run(BuiltProgram.tandem, ["bench", "groups", "--nproc", "2,4", "--repeats", "1"])
        XCTAssertEqual(run.status, 0, run.output)
        // 3 shapes of 2 ranks and 6 of 4, each a row "tp pp dp split new ratio×".
        let rows = run.output.split(separator: "\n").filter { $0.hasSuffix("×") && !$0.hasPrefix("#") }
        XCTAssertEqual(rows.count, 9, run.output)
    }

    func testKillNineOfARankMidCollectiveMakesEveryOtherRankThrowPeerLostWithinTwoSeconds() throws {
        try forEachBackend { backend in
            let before = sharedMemoryLeftovers()
            try checkKillMidCollective(backend: backend)
            XCTAssertEqual(sharedMemoryLeftovers().subtracting(before), [], "\(backend): segments left in /dev/shm")
        }
    }

    private func checkKillMidCollective(backend: BackendChoice) throws {
        let run = try launch(3, ["kill-mid-collective", "2"], backend: backend, extra: ["--grace-period", "5"])
        XCTAssertEqual(run.status, 137, "launcher exits 128+SIGKILL: \(run.output)")
        XCTAssertEqual(run.lines(containing: "tandem launch: rank 2").filter { $0.contains("failed first") && $0.contains("SIGKILL") }.count, 1, run.output)
        guard let victim = run.lines(containing: "VICTIM rank=2").first, let killedAt = milliseconds(in: victim) else {
            return XCTFail("victim did not report: \(run.output)")
        }
        for rank in 0..<2 {
            guard let line = run.lines(containing: "[rank\(rank)]: ERROR").first, let detectedAt = milliseconds(in: line) else {
                XCTFail("rank \(rank) did not report an error: \(run.output)")
                continue
            }
            XCTAssertTrue(line.contains("kind=peerLost rank=2"), line)
            XCTAssertLessThan(detectedAt - killedAt, 2000, "rank \(rank) noticed after \(detectedAt - killedAt) ms")
        }
    }

    func testARankThatDiesWhileOthersAreIdleFailsTheirNextOperationAtOnce() throws {
        try forEachBackend(checkDeathWhileIdle)
    }

    private func checkDeathWhileIdle(backend: BackendChoice) throws {
        let run = try launch(3, ["kill-while-idle"], backend: backend)
        XCTAssertEqual(run.status, 137, run.output)
        guard let victim = run.lines(containing: "VICTIM rank=1").first, let killedAt = milliseconds(in: victim) else {
            return XCTFail("victim did not report: \(run.output)")
        }
        for rank in [0, 2] {
            guard let calling = run.lines(containing: "[rank\(rank)]: CALLING").first, let calledAt = milliseconds(in: calling),
                let line = run.lines(containing: "[rank\(rank)]: ERROR").first, let failedAt = milliseconds(in: line)
            else {
                XCTFail("rank \(rank) did not report: \(run.output)")
                continue
            }
            XCTAssertTrue(line.contains("kind=peerLost rank=1"), line)
            XCTAssertLessThan(failedAt - calledAt, 100, "the next operation must throw at once, took \(failedAt - calledAt) ms")
            XCTAssertLessThan(failedAt - killedAt, 2000)
        }
    }

    func testMismatchedSizesAcrossProcessesFailEveryRankNamingBothSides() throws {
        try forEachBackend(checkMismatchedSizes)
    }

    private func checkMismatchedSizes(backend: BackendChoice) throws {
        let run = try launch(3, ["mismatch-size"], backend: backend)
        XCTAssertNotEqual(run.status, 0)
        let errors = run.lines(containing: "ERROR kind=")
        XCTAssertEqual(errors.count, 3, run.output)
        XCTAssertTrue(errors.allSatisfy { $0.contains("kind=mismatch") || $0.contains("kind=peerAborted") }, run.output)
        XCTAssertTrue(errors.contains { $0.contains("1000 elements") && $0.contains("1001 elements") }, run.output)
        XCTAssertLessThan(run.seconds, 20)
    }

    func testAFailingRankStopsTheJobAndTheLauncherNamesIt() throws {
        let run = try launch(3, ["exit-code", "7"])
        XCTAssertEqual(run.status, 7, run.output)
        XCTAssertEqual(run.lines(containing: "tandem launch: rank 1").filter { $0.contains("failed first: it exited with code 7") }.count, 1, run.output)
        XCTAssertTrue(run.lines(containing: "barrier passed").isEmpty, run.output)
        XCTAssertLessThan(run.seconds, 20)
    }

    func testInterruptIsForwardedToWorkers() throws {
        let run = try BuiltProgram.run(
            BuiltProgram.tandem, ["launch", "--nproc-per-node", "2", "--master-port", "0", "--", BuiltProgram.worker, "sleep"],
            timeout: 30
        ) { process in
            // Interrupt once both workers exist and have had time to join the group.
            let deadline = Date(timeIntervalSinceNow: 20)
            while Date() < deadline && process.isRunning && self.childCount(of: process) < 2 { usleep(50_000) }
            usleep(500_000)
            process.interrupt()
        }
        XCTAssertEqual(run.status, 130, "128 + SIGINT: \(run.output)")
        XCTAssertTrue(run.output.contains("received SIGINT; forwarding it to the workers"), run.output)
        XCTAssertLessThan(run.seconds, 25)
    }

    /// A worker run through a wrapper is stopped with everything it started: its process group is signalled
    /// (this took 9 s, the wrapped sleep, when only the wrapper was).
    func testStoppingAWorkerStopsWhatItStarted() throws {
        let run = try BuiltProgram.run(
            BuiltProgram.tandem,
            ["launch", "--nproc-per-node", "2", "--master-port", "0", "--grace-period", "1", "--", "bash", "-c",
             "if [ $RANK = 0 ]; then sleep 1; exit 3; fi; sleep 9"], timeout: 30)
        XCTAssertEqual(run.status, 3, run.output)
        XCTAssertLessThan(run.seconds, 4, run.output)
    }

    /// `kill -9` of the launcher takes its workers with it (parent-death signal), within 2 s.
    func testWorkersDieWithTheirLauncher() throws {
        var workers: [pid_t] = []
        var goneAfter: Double?
        _ = try BuiltProgram.run(
            BuiltProgram.tandem, ["launch", "--nproc-per-node", "2", "--master-port", "0", "--", "sleep", "30"], timeout: 30
        ) { launcher in
            let pid = launcher.processIdentifier
            let deadline = Date(timeIntervalSinceNow: 10)
            while workers.count < 2 && Date() < deadline {
                usleep(20_000)
                workers = childProcesses(of: pid)
            }
            // Both have become `sleep` (exec'd by launch-child after asking for the signal).
            while Date() < deadline,
                !workers.allSatisfy({ ((try? String(contentsOfFile: "/proc/\($0)/comm", encoding: .utf8)) ?? "").hasPrefix("sleep") })
            {
                usleep(20_000)
            }
            kill(pid, SIGKILL)
            let killed = Date()
            while Date().timeIntervalSince(killed) < 10 {
                let alive = workers.filter { worker in
                    let state = (try? String(contentsOfFile: "/proc/\(worker)/stat", encoding: .utf8))?.split(separator: " ").dropFirst(2).first
                    return state != nil && state != "Z"
                }
                if alive.isEmpty { goneAfter = Date().timeIntervalSince(killed); break }
                usleep(10_000)
            }
        }
        XCTAssertEqual(workers.count, 2)
        let seconds = try XCTUnwrap(goneAfter, "workers outlived their launcher by 10 s")
        XCTAssertLessThan(seconds, 2)
    }

    /// A job on several nodes refuses a job token anyone could guess, before starting anything.
    func testAShortTokenIsRefusedForSeveralNodes() throws {
        let run = try BuiltProgram.run(
            BuiltProgram.tandem, ["launch", "--nnodes", "2", "--node-rank", "0", "--master-port", "29555", "--", "true"],
            environment: ["TANDEM_JOB_TOKEN": "short"])
        XCTAssertNotEqual(run.status, 0)
        XCTAssertTrue(run.output.contains("TANDEM_JOB_TOKEN has 5 bytes; a job on several nodes needs at least 16"), run.output)
    }

    /// Sizes that cannot be run are refused with the numbers before any rank starts: more than the host's
    /// memory (64G died in the allocator), Int overflow, and sizes that are not whole elements (3 bytes of
    /// float32 ran as 0).
    func testBenchCommRefusesSizesThatCannotRun() throws {
        for (arguments, expected) in [
            (["--min-bytes", "64G", "--max-bytes", "64G"], "this host has"), (["--max-bytes", "8000000000G"], "more than Int.max"),
            (["--min-bytes", "3"], "multiples of a float32 element (4 bytes)"),
        ] {
            let run = try BuiltProgram.run(BuiltProgram.tandem, ["bench", "comm", "--nproc", "2"] + arguments, timeout: 20)
            XCTAssertNotEqual(run.status, 0, run.output)
            XCTAssertTrue(run.output.contains(expected), run.output)
            XCTAssertLessThan(run.seconds, 5)
        }
    }

    /// Forcing the hierarchy on one host is said (once), not silently reported as shared memory.
    func testHierarchyOnOneHostIsSaid() throws {
        let run = try BuiltProgram.run(BuiltProgram.tandem, ["bench", "comm", "--nproc", "2", "--backend", "hier", "--max-bytes", "64"], timeout: 60)
        XCTAssertEqual(run.status, 0, run.output)
        XCTAssertEqual(run.lines(containing: "a hierarchy of one host is plain shared memory").count, 1, run.output)
    }

    func testLaunchRejectsAMissingProgramWithAClearMessage() throws {
        let run = try BuiltProgram.run(BuiltProgram.tandem, ["launch", "--nproc-per-node", "2", "--", "no-such-program-xyz"])
        XCTAssertNotEqual(run.status, 0)
        XCTAssertTrue(run.output.contains("program 'no-such-program-xyz' not found in PATH"), run.output)
    }

    func testBenchCommSpawnsRanksThroughTheLauncherAndChecksEveryRow() throws {
        for op in ["all_reduce", "all_gather", "reduce_scatter", "broadcast", "all_to_all", "send_recv"] {
            let run = try BuiltProgram.run(
                BuiltProgram.tandem,
                ["bench", "comm", "--nproc", "3", "--op", op, "--min-bytes", "1K", "--max-bytes", "1M", "--step-factor", "32",
                 "--iters", "3", "--warmup", "1", "--dtype", "bfloat16", "--json"])
            XCTAssertEqual(run.status, 0, run.output)
            let rows = try JSONSerialization.jsonObject(with: Data(run.output.utf8)) as? [[String: Any]] ?? []
            XCTAssertEqual(rows.count, 3, run.output)
            for row in rows {
                XCTAssertEqual(row["wrong"] as? Int, 0, "\(op): \(row)")
                XCTAssertEqual(row["ranks"] as? Int, 3)
                XCTAssertEqual(row["op"] as? String, op)
                XCTAssertGreaterThan(row["time_us"] as? Double ?? 0, 0)
            }
        }
    }

    /// Without --iters each size is timed over as many iterations as fill --min-time (a 4 KiB all-reduce is a few
    /// µs, so thousands), after a time-based warm-up; the rows are still checked; a non-positive time is refused.
    func testBenchCommTimesSteadyStateByDefault() throws {
        let run = try BuiltProgram.run(
            BuiltProgram.tandem,
            ["bench", "comm", "--nproc", "2", "--min-bytes", "4K", "--max-bytes", "8K", "--min-time", "0.05", "--warmup-time", "0.02", "--json"])
        XCTAssertEqual(run.status, 0, run.output)
        let rows = try JSONSerialization.jsonObject(with: Data(run.output.utf8)) as? [[String: Any]] ?? []
        XCTAssertEqual(rows.count, 2, run.output)
        for row in rows {
            XCTAssertEqual(row["wrong"] as? Int, 0, "\(row)")
            XCTAssertGreaterThan(row["iters"] as? Int ?? 0, 100, "0.05 s of µs-scale iterations: \(row)")
        }
        let forced = try BuiltProgram.run(BuiltProgram.tandem, ["bench", "comm", "--nproc", "2", "--max-bytes", "64", "--iters", "7", "--json"])
        XCTAssertEqual(forced.status, 0, forced.output)
        let forcedRows = try JSONSerialization.jsonObject(with: Data(forced.output.utf8)) as? [[String: Any]] ?? []
        XCTAssertFalse(forcedRows.isEmpty, forced.output)
        XCTAssertEqual(Set(forcedRows.map { $0["iters"] as? Int }), [7], forced.output)
        let refused = try BuiltProgram.run(BuiltProgram.tandem, ["bench", "comm", "--nproc", "2", "--min-time", "0"])
        XCTAssertNotEqual(refused.status, 0)
        XCTAssertTrue(refused.output.contains("--min-time must be > 0"), refused.output)
    }

    /// The number of child processes of `process` (from /proc).
    private func childCount(of process: Process) -> Int {
        let pid = process.processIdentifier
        let children = (try? String(contentsOfFile: "/proc/\(pid)/task/\(pid)/children", encoding: .utf8)) ?? ""
        return children.split(separator: " ").count
    }

    private func milliseconds(in line: String) -> Int64? {
        guard let range = line.range(of: "at_ms=") else { return nil }
        return Int64(line[range.upperBound...].prefix { $0.isNumber })
    }
}
