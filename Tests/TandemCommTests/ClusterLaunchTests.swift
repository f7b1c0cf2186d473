import TandemComm
import XCTest

/// Ranks started by mpirun, mpiexec or srun join without flags: each launcher's variables, in the documented
/// order, give rank, world, local rank, the store's address and a port and token derived from the job's id —
/// the same on every rank of a job, different between jobs. Slurm's host and task lists expand as Slurm writes them.
final class ClusterLaunchTests: XCTestCase {
    func testSlurmHostListsExpand() throws {
        // Each range keeps its own width: Slurm writes node07 as node[…,07], and node[…,7] means node7.
        XCTAssertEqual(try SlurmHostlist.expand("node[01-04,07],gpu2"), ["node01", "node02", "node03", "node04", "node07", "gpu2"])
        XCTAssertEqual(try SlurmHostlist.expand("node[01-02,7]"), ["node01", "node02", "node7"])
        XCTAssertEqual(try SlurmHostlist.expand("rack[1-2]-n[3,5]"), ["rack1-n3", "rack1-n5", "rack2-n3", "rack2-n5"])
        XCTAssertEqual(try SlurmHostlist.expand("a[8-10]"), ["a8", "a9", "a10"])
        XCTAssertEqual(try SlurmHostlist.expand("x[098-101]"), ["x098", "x099", "x100", "x101"])
        XCTAssertEqual(try SlurmHostlist.expand("localhost"), ["localhost"])
        for (bad, why) in [
            ("node[01-04", "an unclosed ["), ("node]1", "a ] without ["), ("node[4-1]", "a bad range '4-1'"), ("node[a-b]", "a bad range 'a-b'"),
            ("n[1-2],,m", "an empty host"), ("n[[1]]", "nested brackets"), ("n[0-99999]", "more than 65,536 hosts"), ("", "an empty host"),
        ] {
            XCTAssertThrowsError(try SlurmHostlist.expand(bad), bad) { error in
                XCTAssertTrue("\(error)".contains("SLURM_STEP_NODELIST") && "\(error)".contains(why), "\(bad): \(error)")
            }
        }
        XCTAssertEqual(try SlurmHostlist.tasksPerNode("2(x3),1"), [2, 2, 2, 1])
        XCTAssertEqual(try SlurmHostlist.tasksPerNode("4"), [4])
        for bad in ["", "2(x0)", "0", "2(3)", "x", "2(x3"] {
            XCTAssertThrowsError(try SlurmHostlist.tasksPerNode(bad), bad) { error in
                XCTAssertTrue("\(error)".contains("SLURM_STEP_TASKS_PER_NODE"), "\(bad): \(error)")
            }
        }
    }

    private static func openMPI(rank: Int, size: Int, localRank: Int, localSize: Int, job: String = "917635073") -> [String: String] {
        [
            "OMPI_COMM_WORLD_RANK": String(rank), "OMPI_COMM_WORLD_SIZE": String(size), "OMPI_COMM_WORLD_LOCAL_RANK": String(localRank),
            "OMPI_COMM_WORLD_LOCAL_SIZE": String(localSize), "OMPI_MCA_ess_base_jobid": job, "PMIX_NAMESPACE": job,
        ]
    }

    private static func slurm(rank: Int, node: Int, localRank: Int, job: String = "4242", step: String = "0") -> [String: String] {
        [
            "SLURM_JOB_ID": job, "SLURM_STEP_ID": step, "SLURM_PROCID": String(rank), "SLURM_STEP_NUM_TASKS": "6", "SLURM_LOCALID": String(localRank),
            "SLURM_NODEID": String(node), "SLURM_STEP_TASKS_PER_NODE": "4,2", "SLURM_STEP_NODELIST": "gpu[07-08]",
            // The allocation's lists, which a step of fewer tasks must not be read from.
            "SLURM_NTASKS": "8", "SLURM_JOB_NODELIST": "gpu[01-08]",
        ]
    }

    func testOpenMPIRanksJoinWithAPortAndTokenFromTheJob() throws {
        let ranks = try (0..<2).map { try Rendezvous.fromLauncher(Self.openMPI(rank: $0, size: 2, localRank: $0, localSize: 2)) }
        for (rank, rendezvous) in ranks.enumerated() {
            XCTAssertEqual(rendezvous.launcher, .openMPI)
            XCTAssertEqual([rendezvous.rank, rendezvous.worldSize, rendezvous.localRank, rendezvous.localWorldSize], [rank, 2, rank, 2])
            XCTAssertEqual(rendezvous.masterAddress, "127.0.0.1", "every rank on this host")
            XCTAssertTrue((20000..<32000).contains(Int(rendezvous.masterPort)), "below the ephemeral range: \(rendezvous.masterPort)")
        }
        XCTAssertEqual(ranks[0].masterPort, ranks[1].masterPort)
        XCTAssertEqual(ranks[0].derivedToken, ranks[1].derivedToken)
        XCTAssertGreaterThanOrEqual(ranks[0].derivedToken?.count ?? 0, 16)
        let other = try Rendezvous.fromLauncher(Self.openMPI(rank: 0, size: 2, localRank: 0, localSize: 2, job: "917635074"))
        XCTAssertNotEqual(other.derivedToken, ranks[0].derivedToken, "another job, another token")
        // MASTER_PORT and MASTER_ADDR win when given.
        var given = Self.openMPI(rank: 1, size: 4, localRank: 1, localSize: 2)
        given["MASTER_ADDR"] = "10.0.0.5"
        given["MASTER_PORT"] = "29400"
        let explicit = try Rendezvous.fromLauncher(given)
        XCTAssertEqual([explicit.masterAddress, String(explicit.masterPort)], ["10.0.0.5", "29400"])
        // Several hosts and no MASTER_ADDR: said, with what to do.
        XCTAssertThrowsError(try Rendezvous.fromLauncher(Self.openMPI(rank: 1, size: 4, localRank: 1, localSize: 2))) { error in
            XCTAssertTrue("\(error)".contains("MASTER_ADDR is not set") && "\(error)".contains("several hosts"), "\(error)")
        }
    }

    func testSlurmStepRanksUseTheStepsListsNotTheAllocations() throws {
        // Six tasks: four on gpu07, two on gpu08; global rank 5 is gpu08's second.
        let rendezvous = try Rendezvous.fromLauncher(Self.slurm(rank: 5, node: 1, localRank: 1))
        XCTAssertEqual(rendezvous.launcher, .slurm)
        XCTAssertEqual([rendezvous.rank, rendezvous.worldSize, rendezvous.localRank, rendezvous.localWorldSize], [5, 6, 1, 2])
        XCTAssertEqual(rendezvous.masterAddress, "gpu07", "the step's first host")
        let first = try Rendezvous.fromLauncher(Self.slurm(rank: 0, node: 0, localRank: 0))
        XCTAssertEqual([first.localWorldSize], [4])
        XCTAssertEqual(first.masterPort, rendezvous.masterPort)
        XCTAssertEqual(first.derivedToken, rendezvous.derivedToken)
        XCTAssertNotEqual(try Rendezvous.fromLauncher(Self.slurm(rank: 0, node: 0, localRank: 0, step: "1")).masterPort, first.masterPort,
            "another step of the job meets elsewhere (unless the hash collides, 1 in 12,000; these two do not)")
        var broken = Self.slurm(rank: 0, node: 2, localRank: 0)
        XCTAssertThrowsError(try Rendezvous.fromLauncher(broken)) { error in
            XCTAssertTrue("\(error)".contains("SLURM_NODEID") && "\(error)".contains("2"), "\(error)")
        }
        broken = Self.slurm(rank: 0, node: 0, localRank: 0)
        broken["SLURM_STEP_NODELIST"] = nil
        XCTAssertThrowsError(try Rendezvous.fromLauncher(broken)) { error in
            XCTAssertTrue("\(error)".contains("SLURM_STEP_NODELIST is not set"), "\(error)")
        }
    }

    func testLaunchersAreFoundInTheDocumentedOrder() throws {
        XCTAssertNil(ClusterLauncher.detect([:]))
        // An sbatch script (the batch step: no step id) and a one-task step are not jobs of ranks.
        XCTAssertNil(ClusterLauncher.detect(["SLURM_PROCID": "0", "SLURM_JOB_ID": "1", "SLURM_NTASKS": "8"]))
        XCTAssertNil(ClusterLauncher.detect(["SLURM_STEP_ID": "0", "SLURM_PROCID": "0", "SLURM_STEP_NUM_TASKS": "1"]))
        XCTAssertNil(ClusterLauncher.detect(Self.openMPI(rank: 0, size: 1, localRank: 0, localSize: 1)))
        // mpirun inside an allocation: its own variables describe the ranks.
        XCTAssertEqual(ClusterLauncher.detect(Self.slurm(rank: 0, node: 0, localRank: 0).merging(Self.openMPI(rank: 0, size: 2, localRank: 0, localSize: 2)) { $1 }), .openMPI)
        // torchrun's (tandem launch's) come first of all: a worker Tandem spawns inside an mpirun job has them.
        XCTAssertEqual(ClusterLauncher.detect(Self.openMPI(rank: 0, size: 2, localRank: 0, localSize: 2).merging(["RANK": "1"]) { $1 }), .torchrun)
        let hydra = ["PMI_RANK": "1", "PMI_SIZE": "2", "MPI_LOCALRANKID": "1", "MPI_LOCALNRANKS": "2"]
        let rendezvous = try Rendezvous.fromLauncher(hydra)
        XCTAssertEqual(rendezvous.launcher, .hydra)
        XCTAssertEqual([rendezvous.rank, rendezvous.worldSize, rendezvous.localRank], [1, 2, 1])
        XCTAssertEqual(rendezvous.masterAddress, "127.0.0.1")
        XCTAssertThrowsError(try Rendezvous.fromLauncher(["PMI_RANK": "1", "PMI_SIZE": "x"])) { error in
            XCTAssertTrue("\(error)".contains("invalid PMI_SIZE=\"x\""), "\(error)")
        }
    }
}
