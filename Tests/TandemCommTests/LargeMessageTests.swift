import TandemComm
import TandemTensor
import XCTest

/// Messages of 16 MiB and more on every operation, at a world size that divides nothing evenly.
final class LargeMessageTests: XCTestCase {
    /// 16 MiB of float32 plus a prime remainder.
    static let count = (16 << 20) / 4 + 13

    private static func pattern(_ rank: Int, _ index: Int) -> Float { Float((index &* 31 &+ rank &* 7) % 64) - 32 }

    private static func filled(_ count: Int, _ value: (Int) -> Float) -> Tensor {
        let tensor = Tensor(zeros: [count], dtype: .float32)
        let pointer = tensor.baseAddress.assumingMemoryBound(to: Float.self)
        for index in 0..<count { pointer[index] = value(index) }
        return tensor
    }

    private static func mismatches(_ tensor: Tensor, _ expected: (Int) -> Float) -> Int {
        let pointer = tensor.baseAddress.assumingMemoryBound(to: Float.self)
        var wrong = 0
        for index in 0..<tensor.count where pointer[index] != expected(index) { wrong += 1 }
        return wrong
    }

    func testEveryOperationMovesSixteenMebibytesExactly() throws {
        let count = Self.count
        try runRanks(3) { group, failures in
            let (rank, world) = (group.rank, group.worldSize)
            func expect(_ label: String, _ tensor: Tensor, _ value: (Int) -> Float) {
                let wrong = Self.mismatches(tensor, value)
                if wrong > 0 { failures.record("\(label): \(wrong) wrong elements") }
            }
            let reduced = Self.filled(count) { Self.pattern(rank, $0) }
            try group.allReduce(reduced)
            expect("allReduce", reduced) { index in (0..<world).reduce(0) { $0 + Self.pattern($1, index) } }

            let gathered = try group.allGather(Self.filled(count) { Self.pattern(rank, $0) })
            expect("allGather", gathered) { Self.pattern($0 / count, $0 % count) }

            let scattered = try group.reduceScatter(Self.filled(count * world) { Self.pattern(rank, $0) })
            expect("reduceScatter", scattered) { index in (0..<world).reduce(0) { $0 + Self.pattern($1, rank * count + index) } }

            let broadcasted = rank == 1 ? Self.filled(count) { Self.pattern(1, $0) } : Tensor(zeros: [count], dtype: .float32)
            try group.broadcast(broadcasted, source: 1)
            expect("broadcast", broadcasted) { Self.pattern(1, $0) }

            let exchanged = Tensor(zeros: [count * world], dtype: .float32)
            try group.allToAll(Self.filled(count * world) { Self.pattern(rank, $0) }, into: exchanged)
            expect("allToAll", exchanged) { Self.pattern($0 / count, rank * count + $0 % count) }

            let shifted = Tensor(zeros: [count], dtype: .float32)
            try group.sendReceive(Self.filled(count) { Self.pattern(rank, $0) }, to: (rank + 1) % world, into: shifted, from: (rank + world - 1) % world)
            expect("sendReceive", shifted) { Self.pattern((rank + world - 1) % world, $0) }

            let collected = try group.gather(Self.filled(count) { Self.pattern(rank, $0) }, destination: 2)
            if rank == 2 { expect("gather", collected!) { Self.pattern($0 / count, $0 % count) } }
            let part = Tensor(zeros: [count], dtype: .float32)
            try group.scatter(rank == 0 ? Self.filled(count * world) { Self.pattern(0, $0) } : nil, into: part, source: 0)
            expect("scatter", part) { Self.pattern(0, rank * count + $0) }
        }
    }
}
