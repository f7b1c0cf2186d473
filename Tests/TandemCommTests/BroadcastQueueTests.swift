import Foundation
import TandemComm
import TandemTensor
import TandemTestSupport
import XCTest

/// The broadcast queue: order and content under load with overflows and slow readers, readers on other
/// (pretend) hosts, timeouts that consume nothing, and shutdown from either end.
final class BroadcastQueueTests: XCTestCase {
    /// Message `index` of a run: its length (0 … 3 chunks, so about a third overflow) and bytes, from the seed.
    private static func message(_ index: Int, seed: UInt64, chunkBytes: Int) -> [UInt8] {
        var random = SeededGenerator(seed: seed &+ UInt64(index) &* 0x9E37_79B9)
        let length = random.next() % 3 == 0 ? Int(random.next() % UInt64(3 * chunkBytes)) : Int(random.next() % 200)
        return (0..<length).map { _ in UInt8(truncatingIfNeeded: random.next()) }
    }

    private func stress(messages: Int, hosts: (@Sendable (Int, inout ProcessGroupOptions) -> Void)?) throws {
        let seed = TandemEnvironment.testSeed.value.flatMap(UInt64.init) ?? UInt64.random(in: 1...UInt64(UInt32.max))
        print("BroadcastQueueTests seed: \(seed) (rerun with \(TandemEnvironment.testSeed.name)=\(seed))")
        let chunkBytes = 4096
        let outcomes = try ThreadLauncher.run(worldSize: 5, options: ProcessGroupOptions(timeout: 60), perRank: hosts) { world in
            let queue = try BroadcastQueue(world: world, writer: 0, name: "stress", chunkBytes: chunkBytes, chunks: 4)
            var random = SeededGenerator(seed: seed &+ UInt64(world.rank))
            var problems: [String] = []
            let onWritersHost = hosts == nil || world.rank < 3
            if queue.usesSharedMemory != onWritersHost { problems.append("usesSharedMemory \(queue.usesSharedMemory)") }
            for index in 0..<messages {
                // Random pauses on every side, so the ring runs both full and empty.
                if random.next() % 50 == 0 { usleep(UInt32(random.next() % 2000)) }
                let expected = Self.message(index, seed: seed, chunkBytes: chunkBytes)
                if world.rank == 0 {
                    try queue.enqueue(expected)
                } else {
                    let received = try queue.dequeue(timeout: 30)
                    if received != expected && problems.count < 5 {
                        problems.append("message \(index): \(received.count) bytes, expected \(expected.count)")
                    }
                }
            }
            if world.rank == 0 {
                queue.shutdown()
            } else {
                do {
                    _ = try queue.dequeue(timeout: 30)
                    problems.append("a message after the last one")
                } catch QueueError.closed {}
            }
            try world.barrier()
            return problems
        }
        for (rank, outcome) in outcomes.enumerated() {
            XCTAssertEqual(try outcome.get(), [], "rank \(rank), seed \(seed)")
        }
    }

    func testFourLocalReadersGetTenThousandMessagesInOrderIncludingOverflows() throws {
        try stress(messages: 10_000, hosts: nil)
    }

    func testReadersOnOtherHostsGetEveryMessageOverTCP() throws {
        // Ranks 0, 1, 2 on one host (two ring readers), 3 and 4 elsewhere (TCP readers).
        try stress(messages: 2_000) { rank, options in options.hostIdentity = rank < 3 ? "host-a" : "host-b" }
    }

    func testATimedOutDequeueConsumesNothingAndShutdownReleasesAWaitingReader() throws {
        let outcomes = try ThreadLauncher.run(worldSize: 3, options: ProcessGroupOptions(timeout: 30)) { world in
            let queue = try BroadcastQueue(world: world, writer: 0, chunkBytes: 1024, chunks: 2)
            var notes: [String] = []
            if world.rank == 0 {
                XCTAssertThrowsError(try queue.dequeue()) { error in
                    guard case .invalid? = error as? QueueError else { return XCTFail("\(error)") }
                }
                try world.barrier()  // the readers have timed out once
                try queue.enqueue(object: ["step": 1])
                try world.barrier()
            } else {
                let start = Date()
                XCTAssertThrowsError(try queue.dequeue(timeout: 0.2)) { error in
                    XCTAssertEqual(error as? QueueError, .timeout(seconds: 0.2))
                }
                let waited = Date().timeIntervalSince(start)
                if waited < 0.2 || waited > 1.5 { notes.append("timeout after \(waited) s") }
                try world.barrier()
                let value = try queue.dequeue([String: Int].self, timeout: 10)
                if value != ["step": 1] { notes.append("got \(value)") }
                try world.barrier()
                // A reader's own shutdown releases its dequeue waiting on another thread.
                let waiting = JoinableResult { () throws -> [UInt8] in try queue.dequeue(timeout: 20) }
                usleep(100_000)
                let released = Date()
                queue.shutdown()
                switch waiting.value {
                case let .failure(error) where (error as? QueueError) == .closed(queue: "queue"): break
                case let other: notes.append("waiting dequeue ended with \(other)")
                }
                if Date().timeIntervalSince(released) > 1 { notes.append("shutdown took \(Date().timeIntervalSince(released)) s to release") }
            }
            return notes
        }
        for outcome in outcomes { XCTAssertEqual(try outcome.get(), [String]()) }
    }
}
