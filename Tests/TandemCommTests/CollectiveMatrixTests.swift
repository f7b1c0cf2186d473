import Foundation
import TandemComm
import TandemTensor
import XCTest

/// Every collective against the serial reference: world sizes 1–8, every dtype, sizes 0, 1, primes, sizes
/// not divisible by the world size, and sizes above the direct/ring crossover.
final class CollectiveMatrixTests: XCTestCase {
    static let counts = [0, 1, 7, 13, 4_099, 70_001]

    func testReductionsMatchReferenceForWorldSizesOneToEight() throws {
        for worldSize in 1...8 {
            try runRanks(worldSize) { group, failures in
                for dtype in DType.allCases {
                    for count in Self.counts + [worldSize + 1] {
                        try Self.checkAllReduce(group, failures, dtype: dtype, count: count)
                        try Self.checkReduceScatter(group, failures, dtype: dtype, count: count)
                    }
                }
            }
        }
    }

    func testEveryForcedAllReduceAlgorithmMatchesReference() throws {
        // A 4 KiB shared-memory exchange area makes the larger sizes stream through many rounds.
        for algorithm in [AllReduceAlgorithm.ring, .direct, .recursiveDoubling, .oneShot, .twoShot] {
            for worldSize in [2, 3, 4, 5, 7, 8] {
                let options = ProcessGroupOptions(timeout: 60, allReduceAlgorithm: algorithm, sharedBufferBytes: 4096)
                try runRanks(worldSize, options: options) { group, failures in
                    for dtype in [DType.float32, .bfloat16, .int8] {
                        for count in [0, 1, 3, 7, 10_007] {
                            try Self.checkAllReduce(group, failures, dtype: dtype, count: count)
                            try Self.checkReduceScatter(group, failures, dtype: dtype, count: count)
                        }
                    }
                }
            }
        }
    }

    func testDataMovementMatchesReferenceForWorldSizesOneToEight() throws {
        for worldSize in 1...8 {
            try runRanks(worldSize) { group, failures in
                for dtype in DType.allCases {
                    for count in Self.counts + [worldSize + 1] {
                        try Self.checkAllGather(group, failures, dtype: dtype, count: count)
                        try Self.checkBroadcastGatherScatter(group, failures, dtype: dtype, count: count)
                        try Self.checkAllToAll(group, failures, dtype: dtype, count: count)
                        try Self.checkPointToPoint(group, failures, dtype: dtype, count: count)
                    }
                }
                try group.barrier()
                try Self.checkObjects(group, failures)
            }
        }
    }

    /// `hasIncoming(from:)` (MPI's Iprobe) on every backend: false before a peer sends, true once its message has
    /// begun to arrive (polled, bounded), false again after the receive consumed it; it never consumes. Rank 0
    /// sends rank 1 nothing but the probed message (it waits on rank 1's "go" and "done"), and rank 2 nothing.
    func testProbeSeesAMessageBeforeTheReceiveAndConsumesNothing() throws {
        try runRanks(3) { group, failures in
            let payload = Tensor(converting: [1, 2, 3, 4, 5], dtype: .float32)
            let signal = Tensor(zeros: [1], dtype: .int32)
            switch group.rank {
            case 0:
                try group.recv(into: signal, from: 1)
                try group.send(payload, to: 1, tag: 9)
                try group.recv(into: signal, from: 1)
            case 1:
                if group.hasIncoming(from: 0) { failures.record("a message from rank 0 before it sent one") }
                if group.hasIncoming(from: 1) || group.hasIncoming(from: 7) { failures.record("a probe of itself or of no rank said yes") }
                try group.send(signal, to: 0)
                let deadline = Date().addingTimeInterval(10)
                while !group.hasIncoming(from: 0) && Date() < deadline { usleep(100) }
                if !group.hasIncoming(from: 0) { failures.record("no message from rank 0 within 10 s") }
                if !group.hasIncoming(from: 0) { failures.record("a second probe consumed the message") }
                if group.hasIncoming(from: 2) { failures.record("a message from rank 2, which sent none") }
                let received = Tensor(zeros: [5], dtype: .float32)
                try group.recv(into: received, from: 0, tag: 9)
                failures.check(received, payload, "probed message")
                if group.hasIncoming(from: 0) { failures.record("a message from rank 0 after the only one was received") }
                try group.send(signal, to: 0)
                try group.send(signal, to: 2)
            default:
                // Stays in the group (a rank that has left reads as an ended connection) until rank 1 is done.
                try group.recv(into: signal, from: 1)
            }
        }
    }

    // MARK: - Checks

    private static func checkAllReduce(_ group: ProcessGroup, _ failures: Failures, dtype: DType, count: Int) throws {
        let (rank, world) = (group.rank, group.worldSize)
        for op in ReduceOp.allCases where op != .avg || dtype.isFloatingPoint {
            let tensor = Reference.tensor([count], dtype) { Reference.reduceInput(op, rank: rank, index: $0) }
            try group.allReduce(tensor, op: op)
            let expected = Tensor(converting: (0..<count).map { Reference.reduced(op, worldSize: world, index: $0) }, dtype: dtype)
            failures.check(tensor, expected, "allReduce \(op) \(dtype) × \(count)")
        }
        let input = Reference.tensor([count], dtype) { Reference.reduceInput(.sum, rank: rank, index: $0) }
        let pristine = input.copy()
        let output = Tensor(zeros: [count], dtype: dtype)
        try group.allReduce(input, into: output)
        let expected = Tensor(converting: (0..<count).map { Reference.reduced(.sum, worldSize: world, index: $0) }, dtype: dtype)
        failures.check(output, expected, "allReduce out-of-place \(dtype) × \(count)")
        failures.check(input, pristine, "allReduce out-of-place left its input alone (\(dtype) × \(count))")
    }

    private static func checkReduceScatter(_ group: ProcessGroup, _ failures: Failures, dtype: DType, count: Int) throws {
        let (rank, world) = (group.rank, group.worldSize)
        // Along dim 0: the input holds world × count elements; rank r keeps part r.
        let input = Reference.tensor([world * count], dtype) { Reference.reduceInput(.sum, rank: rank, index: $0) }
        let output = try group.reduceScatter(input)
        failures.check(
            output,
            Tensor(converting: (0..<count).map { Reference.reduced(.sum, worldSize: world, index: rank * count + $0) }, dtype: dtype),
            "reduceScatter dim 0 \(dtype) × \(count)")
        // Along dim 1 of a [3, world × count] tensor.
        let wide = Reference.tensor([3, world * count], dtype) { Reference.reduceInput(.max, rank: rank, index: $0) }
        let part = try group.reduceScatter(wide, dim: 1, op: .max)
        let expectedWide = (0..<3).flatMap { row in
            (0..<count).map { Reference.reduced(.max, worldSize: world, index: row * world * count + rank * count + $0) }
        }
        failures.check(part, Tensor(converting: expectedWide, shape: [3, count], dtype: dtype), "reduceScatter dim 1 \(dtype) × \(count)")
        // Ragged parts.
        let sizes = (0..<world).map { (count + $0) % 5 + $0 % 2 }
        let total = sizes.reduce(0, +)
        let ragged = Reference.tensor([total, 2], dtype) { Reference.reduceInput(.sum, rank: rank, index: $0) }
        let mine = try group.reduceScatterV(ragged, sizes: sizes)
        let start = sizes[..<rank].reduce(0, +) * 2
        failures.check(
            mine,
            Tensor(converting: (0..<sizes[rank] * 2).map { Reference.reduced(.sum, worldSize: world, index: start + $0) }, shape: [sizes[rank], 2], dtype: dtype),
            "reduceScatterV \(dtype) sizes \(sizes)")
    }

    private static func checkAllGather(_ group: ProcessGroup, _ failures: Failures, dtype: DType, count: Int) throws {
        let (rank, world) = (group.rank, group.worldSize)
        let input = Reference.tensor([count], dtype) { Reference.movedInput(rank: rank, index: $0) }
        let gathered = try group.allGather(input)
        let expected = Reference.tensor([world * count], dtype) { Reference.movedInput(rank: $0 / max(count, 1), index: $0 % max(count, 1)) }
        failures.check(gathered, expected, "allGather dim 0 \(dtype) × \(count)")
        // Along dim 1: [2, count] per rank → [2, world × count].
        let matrix = Reference.tensor([2, count], dtype) { Reference.movedInput(rank: rank, index: $0, salt: 1) }
        let columns = try group.allGather(matrix, dim: 1)
        let expectedColumns = (0..<2).flatMap { row in
            (0..<world * count).map { column in
                Double(Reference.movedInput(rank: column / count, index: row * count + column % count, salt: 1))
            }
        }
        failures.check(columns, Tensor(converting: expectedColumns, shape: [2, world * count], dtype: dtype), "allGather dim 1 \(dtype) × \(count)")
        // Ragged.
        let sizes = (0..<world).map { (count + 3 * $0) % 4 }
        let mine = Reference.tensor([sizes[rank]], dtype) { Reference.movedInput(rank: rank, index: $0, salt: 2) }
        let all = try group.allGatherV(mine, sizes: sizes)
        let expectedRagged = (0..<world).flatMap { peer in (0..<sizes[peer]).map { Double(Reference.movedInput(rank: peer, index: $0, salt: 2)) } }
        failures.check(all, Tensor(converting: expectedRagged, dtype: dtype), "allGatherV \(dtype) sizes \(sizes)")
    }

    private static func checkBroadcastGatherScatter(_ group: ProcessGroup, _ failures: Failures, dtype: DType, count: Int) throws {
        let (rank, world) = (group.rank, group.worldSize)
        let root = count % world
        let tensor = rank == root ? Reference.tensor([count], dtype) { Reference.movedInput(rank: root, index: $0) } : Tensor(zeros: [count], dtype: dtype)
        try group.broadcast(tensor, source: root)
        failures.check(tensor, Reference.tensor([count], dtype) { Reference.movedInput(rank: root, index: $0) }, "broadcast from \(root) \(dtype) × \(count)")

        let destination = (count + 1) % world
        let part = Reference.tensor([count], dtype) { Reference.movedInput(rank: rank, index: $0, salt: 3) }
        let gathered = try group.gather(part, destination: destination)
        if rank == destination {
            let expected = Reference.tensor([world * count], dtype) { Reference.movedInput(rank: $0 / max(count, 1), index: $0 % max(count, 1), salt: 3) }
            if let gathered { failures.check(gathered, expected, "gather to \(destination) \(dtype) × \(count)") } else { failures.record("gather returned nil at the destination") }
        } else if gathered != nil {
            failures.record("gather returned a tensor on a non-destination rank")
        }

        let source = (count + 2) % world
        let whole = rank == source ? Reference.tensor([world * count], dtype) { Reference.movedInput(rank: source, index: $0, salt: 4) } : nil
        let received = Tensor(zeros: [count], dtype: dtype)
        try group.scatter(whole, into: received, source: source)
        failures.check(received, Reference.tensor([count], dtype) { Reference.movedInput(rank: source, index: rank * count + $0, salt: 4) }, "scatter from \(source) \(dtype) × \(count)")
    }

    private static func checkAllToAll(_ group: ProcessGroup, _ failures: Failures, dtype: DType, count: Int) throws {
        let (rank, world) = (group.rank, group.worldSize)
        let input = Reference.tensor([world * count], dtype) { Reference.movedInput(rank: rank, index: $0, salt: 5) }
        let output = Tensor(zeros: [world * count], dtype: dtype)
        try group.allToAll(input, into: output)
        let expected = Reference.tensor([world * count], dtype) { index in
            let peer = index / max(count, 1)
            return Reference.movedInput(rank: peer, index: rank * count + index % max(count, 1), salt: 5)
        }
        failures.check(output, expected, "allToAll \(dtype) × \(count)")

        // Rows of 3; rank p sends (p + q + count) % 4 rows to q.
        let sendSizes = (0..<world).map { (rank + $0 + count) % 4 }
        let receiveSizes = (0..<world).map { ($0 + rank + count) % 4 }
        let rows = Reference.tensor([sendSizes.reduce(0, +), 3], dtype) { Reference.movedInput(rank: rank, index: $0, salt: 6) }
        let landed = Tensor(zeros: [receiveSizes.reduce(0, +), 3], dtype: dtype)
        try group.allToAllV(rows, sendSizes: sendSizes, into: landed, receiveSizes: receiveSizes)
        var expectedRows: [Double] = []
        for peer in 0..<world {
            let peerSendSizes = (0..<world).map { (peer + $0 + count) % 4 }
            let offset = peerSendSizes[..<rank].reduce(0, +) * 3
            expectedRows += (0..<receiveSizes[peer] * 3).map { Double(Reference.movedInput(rank: peer, index: offset + $0, salt: 6)) }
        }
        failures.check(landed, Tensor(converting: expectedRows, shape: [receiveSizes.reduce(0, +), 3], dtype: dtype), "allToAllV \(dtype) sizes \(sendSizes)")
    }

    private static func checkPointToPoint(_ group: ProcessGroup, _ failures: Failures, dtype: DType, count: Int) throws {
        let (rank, world) = (group.rank, group.worldSize)
        guard world > 1 else { return }
        // Ring shift with both directions at once.
        let outgoing = Reference.tensor([count], dtype) { Reference.movedInput(rank: rank, index: $0, salt: 7) }
        let incoming = Tensor(zeros: [count], dtype: dtype)
        let previous = (rank + world - 1) % world
        try group.sendReceive(outgoing, to: (rank + 1) % world, into: incoming, from: previous, tag: 3)
        failures.check(incoming, Reference.tensor([count], dtype) { Reference.movedInput(rank: previous, index: $0, salt: 7) }, "sendReceive \(dtype) × \(count)")
        // Plain pairs: even ranks send two tagged messages to the next odd rank.
        if rank % 2 == 0 && rank + 1 < world {
            try group.send(outgoing, to: rank + 1, tag: 1)
            try group.isend(outgoing, to: rank + 1, tag: 2).wait()
        } else if rank % 2 == 1 {
            let first = Tensor(zeros: [count], dtype: dtype)
            let second = Tensor(zeros: [count], dtype: dtype)
            try group.recv(into: first, from: rank - 1, tag: 1)
            try group.irecv(into: second, from: rank - 1, tag: 2).wait()
            let expected = Reference.tensor([count], dtype) { Reference.movedInput(rank: rank - 1, index: $0, salt: 7) }
            failures.check(first, expected, "recv \(dtype) × \(count)")
            failures.check(second, expected, "irecv \(dtype) × \(count)")
        }
    }

    private struct Payload: Codable, Equatable {
        var rank: Int
        var text: String
        var values: [Double]
    }

    private static func checkObjects(_ group: ProcessGroup, _ failures: Failures) throws {
        let mine = Payload(rank: group.rank, text: String(repeating: "é", count: group.rank * 3), values: [Double(group.rank), 0.5])
        let all = try group.allGatherObject(mine)
        let expected = (0..<group.worldSize).map { Payload(rank: $0, text: String(repeating: "é", count: $0 * 3), values: [Double($0), 0.5]) }
        if all != expected { failures.record("allGatherObject returned \(all)") }
        let root = group.worldSize - 1
        let received = try group.broadcastObject(group.rank == root ? mine : nil, source: root)
        if received != expected[root] { failures.record("broadcastObject returned \(received)") }
    }
}
