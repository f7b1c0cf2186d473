import Foundation
import TandemComm
import TandemTensor
import TandemTestSupport
import XCTest

/// The failure model: mismatches, timeouts, broken groups and shutdown — each error asserted with its bound.
final class FailureTests: XCTestCase {
    /// Runs `body` per rank and returns each rank's error (nil when it returned normally) and seconds taken.
    private func outcomes(
        _ worldSize: Int, backend: BackendChoice, timeout: Double = 30, algorithm: AllReduceAlgorithm = .auto,
        _ body: @escaping @Sendable (ProcessGroup) throws -> Void
    ) throws -> [(error: CommError?, seconds: Double)] {
        let options = ProcessGroupOptions(timeout: timeout, allReduceAlgorithm: algorithm, backend: backend)
        let results = try ThreadLauncher.run(worldSize: worldSize, options: options, perRank: fakeHosts) { group in
            let start = Date()
            do {
                try body(group)
                return (CommError?.none, Date().timeIntervalSince(start))
            } catch let error as CommError {
                return (error, Date().timeIntervalSince(start))
            }
        }
        return try results.map { try $0.get() }
    }

    func testDifferentSizesGiveMismatchNamingBothSizesOnEveryRank() throws {
        try forEachBackend { backend in
            let results = try outcomes(3, backend: backend) { group in
                try group.allReduce(Tensor(zeros: [group.rank == 2 ? 513 : 512], dtype: .float32))
            }
            for (rank, result) in results.enumerated() {
                XCTAssertLessThan(result.seconds, 2, "rank \(rank) took \(result.seconds) s")
                switch result.error {
                case let .mismatch(_, _, expected, received)?:
                    XCTAssertTrue((expected + received).contains("512 elements") && (expected + received).contains("513 elements"), "\(expected) / \(received)")
                case .peerAborted?:
                    break
                default:
                    XCTFail("rank \(rank): expected a mismatch or an abort, got \(String(describing: result.error))")
                }
            }
            XCTAssertTrue(results.contains { if case .mismatch? = $0.error { true } else { false } })
        }
    }

    func testDifferentOperationOrderGivesMismatchNamingBothOperations() throws {
        try forEachBackend { backend in
            let results = try outcomes(2, backend: backend) { group in
                let tensor = Tensor(zeros: [64], dtype: .float32)
                if group.rank == 0 {
                    try group.allReduce(tensor)
                } else {
                    _ = try group.allGather(tensor)
                }
            }
            let descriptions = results.compactMap { $0.error?.description }
            XCTAssertEqual(descriptions.count, 2)
            XCTAssertTrue(descriptions.contains { $0.contains("allReduce #1") && $0.contains("allGather #1") }, "\(descriptions)")
            XCTAssertTrue(results.allSatisfy { $0.seconds < 2 })
        }
    }

    func testDifferentDtypesGiveMismatch() throws {
        try forEachBackend { backend in
            let results = try outcomes(2, backend: backend) { group in
                try group.broadcast(Tensor(zeros: [10], dtype: group.rank == 0 ? .float32 : .int32), source: 0)
                // The root finished its sends before the receiver looked; it learns of the failure next.
                try group.barrier()
            }
            XCTAssertTrue(results.contains { $0.error?.description.contains("int32") ?? false }, "\(results)")
            XCTAssertTrue(results.allSatisfy { $0.error != nil && $0.seconds < 2 })
        }
    }

    func testAnAbsentRankTimesOutNamingGroupOperationSequenceAndTheSilentRank() throws {
        try forEachBackend { backend in
            // Direct exchange: both waiting ranks wait on the absent rank itself (with recursive doubling one of them
            // would be waiting on a live rank that is itself stuck, and would name that one).
            let results = try outcomes(3, backend: backend, timeout: 1, algorithm: .direct) { group in
                try group.barrier()
                if group.rank == 2 {
                    Thread.sleep(forTimeInterval: 2.5)
                    try group.barrier()  // the others have given up by now: this rank learns it at once
                } else {
                    try group.allReduce(Tensor(zeros: [4], dtype: .float32))
                }
            }
            var sawTimeout = false
            for rank in 0..<2 {
                switch results[rank].error {
                case let .timeout(group, operation, sequence, waitingFor, seconds)?:
                    sawTimeout = true
                    XCTAssertEqual(group, "world")
                    XCTAssertEqual(operation, "allReduce")
                    XCTAssertEqual(sequence, 2)
                    // Hierarchically (pretend hosts {0, 2} and {1}) rank 1 waits on its fellow leader, rank 0,
                    // which waits on the absent rank.
                    XCTAssertTrue(waitingFor.contains(backend == .hier && rank == 1 ? 0 : 2), "\(backend) rank \(rank): \(waitingFor)")
                    XCTAssertEqual(seconds, 1)
                    XCTAssertGreaterThanOrEqual(results[rank].seconds, 1)
                    XCTAssertLessThan(results[rank].seconds, 2)
                case .peerAborted?:
                    XCTAssertLessThan(results[rank].seconds, 2)
                default:
                    XCTFail("rank \(rank): expected a timeout, got \(String(describing: results[rank].error))")
                }
            }
            XCTAssertTrue(sawTimeout)
            guard case .peerAborted? = results[2].error else {
                return XCTFail("the late rank should learn the group was aborted, got \(String(describing: results[2].error))")
            }
            XCTAssertLessThan(results[2].seconds, 3.5, "the late rank's barrier must fail at once")
        }
    }

    func testABrokenGroupFailsEveryLaterCallAtOnceWithTheSameError() throws {
        try forEachBackend { backend in
            let results = try outcomes(2, backend: backend) { group in
                do {
                    try group.allReduce(Tensor(zeros: [group.rank + 1], dtype: .float32))
                } catch {
                    let first = group.failure
                    let start = Date()
                    for _ in 0..<100 {
                        do {
                            try group.barrier()
                            XCTFail("a broken group accepted a barrier")
                        } catch let later as CommError {
                            XCTAssertEqual(later, first)
                        }
                    }
                    XCTAssertLessThan(Date().timeIntervalSince(start), 0.5)
                    XCTAssertTrue(group.isBroken)
                    throw error
                }
            }
            XCTAssertTrue(results.allSatisfy { $0.error != nil })
        }
    }

    func testShutdownDuringAPeersCollectiveNeitherHangsNorSucceedsSilently() throws {
        try forEachBackend { backend in
            let results = try outcomes(2, backend: backend, timeout: 30) { group in
                try group.barrier()
                if group.rank == 0 {
                    group.shutdown()
                    XCTAssertThrowsError(try group.barrier()) { error in
                        XCTAssertEqual(error as? CommError, .shutDown(group: "world"))
                    }
                } else {
                    try group.allReduce(Tensor(zeros: [1 << 16], dtype: .float32))
                }
            }
            XCTAssertNotNil(results[1].error)
            XCTAssertLessThan(results[1].seconds, 2, "the peer of a rank that shut down must fail fast, not wait 30 s")
        }
    }

    func testAsyncOperationsRunInIssueOrderAndReportErrorsThroughWork() throws {
        try forEachBackend { backend in
            let results = try outcomes(3, backend: backend) { group in
                let tensors = (0..<20).map { Tensor(converting: [Double($0 + group.rank)], dtype: .int64) }
                let works = tensors.map { group.allReduceAsync($0) }
                for work in works { try work.wait() }
                for (index, tensor) in tensors.enumerated() {
                    XCTAssertEqual(tensor.element(0), Double(3 * index + 3))
                }
            }
            XCTAssertTrue(results.allSatisfy { $0.error == nil }, "\(results)")
            let failing = try outcomes(1, backend: backend) { group in
                let bad = group.allReduceAsync(Tensor(zeros: [1], dtype: .int32), op: .avg)
                XCTAssertThrowsError(try bad.wait()) { error in
                    guard case .invalidArgument? = error as? CommError else { return XCTFail("\(error)") }
                }
                XCTAssertTrue(bad.isCompleted)
                XCTAssertThrowsError(try group.barrierAsync().wait())
            }
            XCTAssertNil(failing[0].error)
        }
    }

    func testOperationsAfterShutdownFailAtOnce() throws {
        try forEachBackend { backend in
            let results = try outcomes(2, backend: backend) { group in
                let works = (0..<5).map { _ in group.allReduceAsync(Tensor(zeros: [1000], dtype: .float32)) }
                for work in works { try work.wait() }
                group.shutdown()
                let late = group.allReduceAsync(Tensor(zeros: [4], dtype: .float32))
                XCTAssertThrowsError(try late.wait()) { error in XCTAssertEqual(error as? CommError, .shutDown(group: "world")) }
                XCTAssertThrowsError(try group.irecv(into: Tensor(zeros: [1], dtype: .int8), from: 1 - group.rank).wait())
            }
            XCTAssertTrue(results.allSatisfy { $0.error == nil }, "\(results)")
        }
    }

    func testInvalidArgumentsAreNamedAndAbortThePeers() throws {
        try forEachBackend { backend in
            let results = try outcomes(2, backend: backend) { group in
                if group.rank == 0 {
                    _ = try group.reduceScatter(Tensor(zeros: [5], dtype: .float32))
                } else {
                    try group.barrier()
                }
            }
            guard case let .invalidArgument(_, operation, detail)? = results[0].error else {
                return XCTFail("\(String(describing: results[0].error))")
            }
            XCTAssertEqual(operation, "reduceScatter")
            XCTAssertTrue(detail.contains("not divisible by the world size 2"), detail)
            guard case .peerAborted(rank: 0, _, _)? = results[1].error else { return XCTFail("\(String(describing: results[1].error))") }
            XCTAssertLessThan(results[1].seconds, 2)
        }
    }

    func testAPeerWithTheWrongTokenIsRefused() throws {
        let server = try TCPStoreServer(host: "127.0.0.1", port: 0, token: "right")
        defer { server.stop() }
        let results = [0, 1].map { rank in
            JoinableResult {
                let token = rank == 0 ? "right" : "wrong"
                let store = try TCPStore(host: "127.0.0.1", port: server.port, token: "right", timeout: 5)
                return try ProcessGroup(store: store, rank: rank, worldSize: 2, options: ProcessGroupOptions(timeout: 2, token: token))
            }
        }
        let errors = results.map { $0.value }
        guard case let .failure(error as CommError) = errors[1], case let .bootstrap(_, detail) = error else {
            return XCTFail("rank 1 should be refused: \(errors[1])")
        }
        XCTAssertTrue(detail.contains("refused the connection"), detail)
        guard case .failure = errors[0] else { return XCTFail("rank 0 must not accept the impostor") }
    }

    /// Ranks that keep different numbers of data connections per peer (`TANDEM_SOCKETS_PER_PEER`) would stripe
    /// messages differently: the rank that dials is refused naming both counts and the variable, the other ends at
    /// its setup deadline.
    func testRanksWithDifferentSocketsPerPeerAreRefusedByName() throws {
        let server = try TCPStoreServer(host: "127.0.0.1", port: 0, token: "sockets-token")
        defer { server.stop() }
        let results = [0, 1].map { rank in
            JoinableResult {
                let store = try TCPStore(host: "127.0.0.1", port: server.port, token: "sockets-token", timeout: 5)
                var options = ProcessGroupOptions(timeout: 2, token: "sockets-token", backend: .tcp)
                options.socketsPerPeer = rank == 0 ? 1 : 2
                return try ProcessGroup(store: store, rank: rank, worldSize: 2, options: options)
            }
        }
        let errors = results.map { $0.value }
        guard case let .failure(error as CommError) = errors[1], case let .bootstrap(_, detail) = error else {
            return XCTFail("rank 1 should be refused: \(errors[1])")
        }
        XCTAssertTrue(
            detail.contains("rank 0 keeps 1 data connection(s) per peer and rank 1 2: TANDEM_SOCKETS_PER_PEER must be the same on every rank"), detail)
        guard case .failure(CommError.bootstrap) = errors[0] else { return XCTFail("rank 0 must not complete its setup: \(errors[0])") }
    }

    /// A count of data connections outside 1…16 set through the API (the environment variable is checked where it
    /// is read) is refused at creation, before any connection is made.
    func testSocketsPerPeerOutsideItsRangeIsRefusedAtCreation() throws {
        let server = try TCPStoreServer(host: "127.0.0.1", port: 0, token: "sockets-token")
        defer { server.stop() }
        let store = try TCPStore(host: "127.0.0.1", port: server.port, token: "sockets-token", timeout: 5)
        for count in [0, 17] {
            var options = ProcessGroupOptions(timeout: 2, token: "sockets-token")
            options.socketsPerPeer = count
            XCTAssertThrowsError(try ProcessGroup(store: store, rank: 0, worldSize: 2, options: options)) { error in
                XCTAssertTrue("\(error)".contains("sockets per peer must be 1…16, got \(count)"), "\(error)")
            }
        }
    }

    /// Strangers that connect to a rank's peer port and say nothing do not hold up the group's setup (each one
    /// held it 10 s before), and the group works.
    func testSilentConnectionsToAPeerPortDoNotDelaySetup() throws {
        let server = try TCPStoreServer(host: "127.0.0.1", port: 0, token: "right")
        defer { server.stop() }
        let options = ProcessGroupOptions(timeout: 30, token: "right")
        let first = JoinableResult {
            try ProcessGroup(store: TCPStore(host: "127.0.0.1", port: server.port, token: "right", timeout: 5), rank: 0, worldSize: 2, options: options)
        }
        // Rank 0 publishes "PORT HOST" for its peers; three silent connections reach it before rank 1 does.
        let probe = try TCPStore(host: "127.0.0.1", port: server.port, token: "right", timeout: 5)
        let published = String(decoding: try probe.get("tandem/group/world/1/addr/0", timeout: 10), as: UTF8.self).split(separator: " ")
        let port = try XCTUnwrap(UInt16(published[0]))
        let silent = (0..<3).compactMap { _ in RawConnection(host: String(published[1]), port: port) }
        XCTAssertEqual(silent.count, 3)
        Thread.sleep(forTimeInterval: 0.2)
        let start = Date()
        let second = try ProcessGroup(
            store: TCPStore(host: "127.0.0.1", port: server.port, token: "right", timeout: 5), rank: 1, worldSize: 2, options: options)
        let group = try first.value.get()
        XCTAssertLessThan(Date().timeIntervalSince(start), 2, "the silent connections delayed the setup")
        let sums = [group, second].map { member in
            JoinableResult { () throws -> [Double] in
                let tensor = Tensor([Float(member.rank + 1)])
                try member.allReduce(tensor)
                return tensor.toDoubles()
            }
        }
        XCTAssertEqual(try sums.map { try $0.value.get() }, [[3], [3]])
        group.shutdown()
        second.shutdown()
        withExtendedLifetime(silent) {}  // open, and silent, until the group is up
    }
}
