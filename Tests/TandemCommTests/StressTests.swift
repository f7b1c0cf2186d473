import Foundation
import TandemComm
import TandemTensor
import XCTest

/// Thousands of mixed collectives with random sizes, roots and dtypes, each checked against the reference.
/// The seed is printed; `TANDEM_TEST_SEED` replays a failure.
final class StressTests: XCTestCase {
    func testThousandsOfRandomCollectivesStayCorrect() throws {
        let seed = TandemEnvironment.testSeed.value.flatMap(UInt64.init) ?? UInt64.random(in: 1...UInt64(UInt32.max))
        print("StressTests seed: \(seed) (rerun with \(TandemEnvironment.testSeed.name)=\(seed))")
        for worldSize in [3, 4] {
            try runRanks(worldSize) { group, failures in
                var random = SeededGenerator(seed: seed &+ UInt64(worldSize))
                let (rank, world) = (group.rank, group.worldSize)
                for step in 0..<2500 {
                    let dtype = DType.allCases[Int(random.next() % UInt64(DType.allCases.count))]
                    // Mostly small, sometimes past the direct/ring crossover.
                    let count = random.next() % 8 == 0 ? Int(random.next() % 40_000) : Int(random.next() % 300)
                    let root = Int(random.next() % UInt64(world))
                    let salt = step
                    switch random.next() % 6 {
                    case 0:
                        let op = [ReduceOp.sum, .max, .min][Int(random.next() % 3)]
                        let tensor = Reference.tensor([count], dtype) { Reference.reduceInput(op, rank: rank, index: $0 + salt) }
                        try group.allReduce(tensor, op: op)
                        failures.check(tensor, Tensor(converting: (0..<count).map { Reference.reduced(op, worldSize: world, index: $0 + salt) }, dtype: dtype), "step \(step) allReduce")
                    case 1:
                        let gathered = try group.allGather(Reference.tensor([count], dtype) { Reference.movedInput(rank: rank, index: $0, salt: salt) })
                        failures.check(gathered, Reference.tensor([count * world], dtype) { Reference.movedInput(rank: $0 / max(count, 1), index: $0 % max(count, 1), salt: salt) }, "step \(step) allGather")
                    case 2:
                        let tensor = rank == root ? Reference.tensor([count], dtype) { Reference.movedInput(rank: root, index: $0, salt: salt) } : Tensor(zeros: [count], dtype: dtype)
                        try group.broadcast(tensor, source: root)
                        failures.check(tensor, Reference.tensor([count], dtype) { Reference.movedInput(rank: root, index: $0, salt: salt) }, "step \(step) broadcast from \(root)")
                    case 3:
                        let part = try group.reduceScatter(Reference.tensor([count * world], dtype) { Reference.reduceInput(.sum, rank: rank, index: $0 + salt) })
                        failures.check(part, Tensor(converting: (0..<count).map { Reference.reduced(.sum, worldSize: world, index: rank * count + $0 + salt) }, dtype: dtype), "step \(step) reduceScatter")
                    case 4:
                        let output = Tensor(zeros: [count * world], dtype: dtype)
                        try group.allToAll(Reference.tensor([count * world], dtype) { Reference.movedInput(rank: rank, index: $0, salt: salt) }, into: output)
                        failures.check(output, Reference.tensor([count * world], dtype) { Reference.movedInput(rank: $0 / max(count, 1), index: rank * count + $0 % max(count, 1), salt: salt) }, "step \(step) allToAll")
                    default:
                        let work = group.barrierAsync()
                        try work.wait()
                    }
                    if !failures.messages.isEmpty {
                        failures.record("seed \(seed), world \(world): first failure at step \(step)")
                        return
                    }
                }
            }
        }
    }
}
