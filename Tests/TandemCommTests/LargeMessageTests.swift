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
        try runRanks(3, Self.everyOperation)
    }

    /// The same over three TCP connections per peer pair (`TANDEM_SOCKETS_PER_PEER=3`): every message is split in
    /// three uneven stripes (16 MiB + 52 bytes, and the ring's and direct algorithms' chunks of it), on the TCP
    /// backend and between the pretend hosts of the hierarchical one.
    func testEveryOperationMovesSixteenMebibytesExactlyOverThreeConnectionsPerPeer() throws {
        var options = ProcessGroupOptions(timeout: 60)
        options.socketsPerPeer = 3
        try runRanks(3, options: options, backends: [.tcp, .hier], Self.everyOperation)
    }

    /// Messages just below, at and above the size that is split, and small ones between them, back to back in both
    /// directions of a ring, on two, four and sixteen connections per peer: each arrives whole and in order (a stripe
    /// read as part of another message would show as wrong bytes or a header mismatch).
    func testMessagesAroundTheStripeSizeArriveWholeAndInOrder() throws {
        let threshold = 256 << 10
        let sizes = [threshold - 1, threshold, 1, threshold + 1, 0, 3 * threshold + 7, 40, 16 * threshold + 5]
        for streams in [2, 4, 16] {
            var options = ProcessGroupOptions(timeout: 60)
            options.socketsPerPeer = streams
            try runRanks(3, options: options, backends: [.tcp]) { group, failures in
                let (rank, world) = (group.rank, group.worldSize)
                func value(_ sender: Int, _ message: Int, _ index: Int) -> Int8 { Int8(truncatingIfNeeded: index &* 7 &+ sender &* 13 &+ message) }
                for (message, size) in sizes.enumerated() {
                    let outgoing = Tensor(zeros: [size], dtype: .int8)
                    let pointer = outgoing.baseAddress.assumingMemoryBound(to: Int8.self)
                    for index in 0..<size { pointer[index] = value(rank, message, index) }
                    let incoming = Tensor(zeros: [size], dtype: .int8)
                    let source = (rank + world - 1) % world
                    try group.sendReceive(outgoing, to: (rank + 1) % world, into: incoming, from: source, tag: Int32(message))
                    let received = incoming.baseAddress.assumingMemoryBound(to: Int8.self)
                    let wrong = (0..<size).filter { received[$0] != value(source, message, $0) }.count
                    if wrong > 0 { failures.record("\(streams) connections: message \(message) (\(size) bytes): \(wrong) wrong bytes") }
                }
            }
        }
    }

    private static func everyOperation(_ group: ProcessGroup, _ failures: Failures) throws {
        let count = Self.count
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
