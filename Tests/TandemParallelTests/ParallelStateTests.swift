import TandemComm
import TandemParallel
import TandemTensor
import XCTest

/// Live groups of `ParallelState` on both creation paths, against rank lists worked out here from vLLM's rule
/// `rank = d·pp·tp + p·tp + t`.
final class ParallelStateTests: XCTestCase {
    /// Every (tp, pp, dp) whose product is `world`.
    private static func shapes(_ world: Int) -> [(tp: Int, pp: Int, dp: Int)] {
        var result: [(Int, Int, Int)] = []
        for tp in 1...world where world % tp == 0 {
            for pp in 1...(world / tp) where (world / tp) % pp == 0 { result.append((tp, pp, world / tp / pp)) }
        }
        return result
    }

    /// The expected members (world ranks, in group order) of `rank`'s group of each kind.
    private static func expected(rank: Int, tp: Int, pp: Int, dp: Int) -> [String: [Int]] {
        let (d, p, t) = (rank / (pp * tp), (rank / tp) % pp, rank % tp)
        func at(_ d: Int, _ p: Int, _ t: Int) -> Int { d * pp * tp + p * tp + t }
        return [
            "tp": (0..<tp).map { at(d, p, $0) },
            "pp": (0..<pp).map { at(d, $0, t) },
            "dp": (0..<dp).map { at($0, p, t) },
            "ep": (0..<dp).flatMap { dd in (0..<tp).map { at(dd, p, $0) } },
        ]
    }

    func testEveryShapeUpToEightRanksGivesVLLMsGroupsOnBothPaths() throws {
        for path in SubgroupPath.allCases {
            for world in 1...8 {
                for shape in Self.shapes(world) {
                    let label = "\(path) world \(world) tp \(shape.tp) pp \(shape.pp) dp \(shape.dp)"
                    let outcomes = try ThreadLauncher.run(worldSize: world, options: ProcessGroupOptions(timeout: 60)) { world in
                        let state = try ParallelState(
                            world: world, tensorParallelSize: shape.tp, pipelineParallelSize: shape.pp, dataParallelSize: shape.dp,
                            enableExpertParallel: true, path: path)
                        defer { state.shutdown() }
                        var problems: [String] = []
                        let expected = Self.expected(rank: world.rank, tp: shape.tp, pp: shape.pp, dp: shape.dp)
                        for (kind, group) in [("tp", state.tensor), ("pp", state.pipeline), ("dp", state.data), ("ep", state.expert!)] {
                            let members = expected[kind]!
                            if group.globalRanks != members { problems.append("\(kind) members \(group.globalRanks) ≠ \(members)") }
                            if group.globalRank != world.rank { problems.append("\(kind) globalRank \(group.globalRank)") }
                            let position = members.firstIndex(of: world.rank)!
                            if group.rankInGroup != position { problems.append("\(kind) rankInGroup \(group.rankInGroup) ≠ \(position)") }
                            if group.nextRank != members[(position + 1) % members.count]
                                || group.previousRank != members[(position + members.count - 1) % members.count]
                                || group.firstRank != members.first! || group.lastRank != members.last!
                            {
                                problems.append("\(kind) neighbours wrong")
                            }
                            // Data really flows among exactly these ranks.
                            let sum = Tensor(converting: [Double(world.rank)], dtype: .int64)
                            try group.allReduce(sum)
                            if sum.element(0) != Double(members.reduce(0, +)) {
                                problems.append("\(kind) all-reduce gave \(sum.element(0)), expected \(members.reduce(0, +))")
                            }
                        }
                        return problems
                    }
                    for (rank, outcome) in outcomes.enumerated() {
                        switch outcome {
                        case let .success(problems): for problem in problems { XCTFail("\(label) rank \(rank): \(problem)") }
                        case let .failure(error): XCTFail("\(label) rank \(rank) threw: \(error)")
                        }
                    }
                }
            }
        }
    }

    func testOneWorldCreatesAndDestroysStatesOfEveryShapeManyTimesOnBothPaths() throws {
        // Names like "pp.1" come back with other members, and shared-memory regions are handed back and reused
        // (40 states × 4 groups is more than a segment's 31 sub-group regions at once).
        let outcomes = try ThreadLauncher.run(worldSize: 4, options: ProcessGroupOptions(timeout: 60)) { world in
            var problems: [String] = []
            for round in 0..<4 {
                for shape in Self.shapes(4) {
                    for path in SubgroupPath.allCases {
                        let state = try ParallelState(
                            world: world, tensorParallelSize: shape.tp, pipelineParallelSize: shape.pp, dataParallelSize: shape.dp,
                            enableExpertParallel: true, path: path)
                        let sum = Tensor(converting: [Double(world.rank + round)], dtype: .int64)
                        try state.pipeline.allReduce(sum)
                        let members = state.pipeline.globalRanks
                        if sum.element(0) != Double(members.reduce(0, +) + round * members.count) {
                            problems.append("\(path) tp \(shape.tp) pp \(shape.pp) round \(round): pp sum \(sum.element(0))")
                        }
                        if path == .split && world.backend == .sharedMemory && state.pipeline.worldSize > 1
                            && state.pipeline.backend != .sharedMemory
                        {
                            problems.append("split pp group fell back to \(state.pipeline.backend) in round \(round)")
                        }
                        state.shutdown()
                    }
                }
            }
            return problems
        }
        for outcome in outcomes { XCTAssertEqual(try outcome.get(), []) }
    }

    func testSplitGroupsRunTheWholeCollectiveSetOverSharedMemoryWhileTheWorldStillWorks() throws {
        let outcomes = try ThreadLauncher.run(worldSize: 4, options: ProcessGroupOptions(timeout: 60, backend: .shm)) { world in
            let state = try ParallelState(world: world, tensorParallelSize: 2, dataParallelSize: 2, path: .split)
            var problems: [String] = []
            if state.tensor.backend != .sharedMemory { problems.append("tp backend \(state.tensor.backend)") }
            for round in 0..<50 {
                // Interleave the groups: each keeps its own sequence and memory region.
                let tp = Tensor(converting: (0..<3000).map { Double($0 % 7 + world.rank + round) }, dtype: .float32)
                try state.tensor.allReduce(tp)
                let members = state.tensor.globalRanks
                let expected = (0..<3000).map { Double(2 * ($0 % 7 + round)) + Double(members.reduce(0, +)) }
                if tp.toDoubles() != expected { problems.append("tp all-reduce round \(round)") }
                let gathered = try state.data.allGather(Tensor(converting: [Double(world.rank)], dtype: .int32))
                if gathered.toDoubles() != state.data.globalRanks.map(Double.init) { problems.append("dp all-gather round \(round)") }
                try world.barrier()
            }
            state.shutdown()
            XCTAssertThrowsError(try state.tensor.barrier())
            try world.barrier()  // a sub-group's shutdown leaves the world alone
            return problems
        }
        for outcome in outcomes { XCTAssertEqual(try outcome.get(), []) }
    }

    func testAFailureInASplitGroupBreaksItsParentToo() throws {
        let outcomes = try ThreadLauncher.run(worldSize: 4, options: ProcessGroupOptions(timeout: 30)) { world in
            let state = try ParallelState(world: world, tensorParallelSize: 2, dataParallelSize: 2, path: .split)
            // Ranks 0 and 1 disagree; ranks 2 and 3 (the other tp group) agree and learn of it in the barrier.
            let tensor = Tensor(zeros: [world.rank == 0 ? 10 : 11], dtype: .float32)
            if world.rank < 2 {
                XCTAssertThrowsError(try state.tensor.allReduce(tensor)) { error in
                    switch error as? CommError {
                    case .mismatch?, .peerAborted?: break
                    default: XCTFail("rank \(world.rank): \(error)")
                    }
                }
            } else {
                // Agreeing ranks of the other tp group finish, or already see the abort (they share its state).
                do { try state.tensor.allReduce(tensor) } catch CommError.peerAborted {}
            }
            XCTAssertThrowsError(try world.barrier())
            return (world.isBroken, state.tensor.isBroken)
        }
        for outcome in outcomes {
            let (worldBroken, tensorBroken) = try outcome.get()
            XCTAssertTrue(worldBroken && tensorBroken)
        }
    }

    func testValidationNamesTheProblem() throws {
        let outcomes = try ThreadLauncher.run(worldSize: 2, options: ProcessGroupOptions(timeout: 30)) { world in
            XCTAssertThrowsError(try ParallelState(world: world, tensorParallelSize: 3)) { error in
                XCTAssertTrue("\(error)".contains("the world has 2 ranks"), "\(error)")
            }
            XCTAssertThrowsError(try world.split([[0, 1], [1]], name: "bad")) { error in
                XCTAssertTrue("\(error)".contains("rank 1 appears in two groups"), "\(error)")
            }
            XCTAssertThrowsError(try world.split([[0, 2]], name: "bad")) { error in
                XCTAssertTrue("\(error)".contains("rank 2 is outside 0..<2"), "\(error)")
            }
            return true
        }
        for outcome in outcomes { XCTAssertTrue(try outcome.get()) }
    }

    func testTheProcessWideStateRefusesASecondInitializeUntilDestroyed() throws {
        // One rank: the process-wide state is per process.
        let outcomes = try ThreadLauncher.run(worldSize: 1, options: ProcessGroupOptions(timeout: 30)) { world in
            defer { ParallelState.destroy() }
            try ParallelState.initialize(world: world, tensorParallelSize: 1)
            XCTAssertNotNil(ParallelState.current)
            XCTAssertThrowsError(try ParallelState.initialize(world: world, tensorParallelSize: 1)) { error in
                XCTAssertTrue("\(error)".contains("already initialized"), "\(error)")
            }
            ParallelState.destroy()
            XCTAssertNil(ParallelState.current)
            try ParallelState.initialize(world: world, tensorParallelSize: 1)
            return true
        }
        XCTAssertTrue(try outcomes[0].get())
    }
}
