import Foundation
import TandemComm
import TandemTensor
import XCTest

/// Shared-memory specifics: when a group may use it, what happens when it cannot, and what it leaves behind.
/// (Every collective is also checked on it by `CollectiveMatrixTests`, and kill -9 by `LauncherTests`.)
final class SharedMemoryTests: XCTestCase {
    /// Tandem's segment names currently in /dev/shm.
    private static func segmentsInDevShm() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/dev/shm")) ?? []).filter { $0.hasPrefix("tdm") }
    }

    func testRanksOnOneHostUseSharedMemoryAndLeaveNoNamesBehindOnceMapped() throws {
        let outcomes = try ThreadLauncher.run(worldSize: 3, options: ProcessGroupOptions(timeout: 30)) { group in
            try group.barrier()  // every rank is past setup
            return (group.backend, Self.segmentsInDevShm())
        }
        for outcome in outcomes {
            let (backend, names) = try outcome.get()
            XCTAssertEqual(backend, .sharedMemory)
            XCTAssertEqual(names, [], "segments must be unlinked once every rank has mapped them")
        }
    }

    func testAFullDevShmFallsBackToTCPUnderAutoAndIsAnErrorNamingTheSizeUnderShm() throws {
        // 1 TiB halves: more than any /dev/shm here, so reserving the segment fails.
        let huge = 1 << 40
        let auto = try ThreadLauncher.run(worldSize: 2, options: ProcessGroupOptions(timeout: 30, sharedBufferBytes: huge)) { group in
            let tensor = Tensor(converting: [Double(group.rank + 1)], dtype: .float32)
            try group.allReduce(tensor)
            return (group.backend, tensor.element(0))
        }
        for outcome in auto {
            let (backend, sum) = try outcome.get()
            XCTAssertEqual(backend, .tcp)
            XCTAssertEqual(sum, 3)
        }
        let forced = try ThreadLauncher.run(
            worldSize: 2, options: ProcessGroupOptions(timeout: 30, backend: .shm, sharedBufferBytes: huge)
        ) { _ in () }
        for outcome in forced {
            guard case let .failure(error as CommError) = outcome, case let .bootstrap(_, detail) = error else {
                return XCTFail("forcing shm without room must fail: \(outcome)")
            }
            XCTAssertTrue(detail.contains("needs") && detail.contains("bytes") && detail.contains("/dev/shm"), detail)
        }
        XCTAssertEqual(Self.segmentsInDevShm(), [])
    }

    func testRanksOnDifferentHostsGoHierarchicalOrTCPUnderAutoAndAreAnErrorUnderShm() throws {
        let hosts: @Sendable (Int, inout ProcessGroupOptions) -> Void = { rank, options in
            options.hostIdentity = rank < 2 ? "host-a" : "host-b"
        }
        let auto = try ThreadLauncher.run(worldSize: 3, options: ProcessGroupOptions(timeout: 30), perRank: hosts) { group in
            try group.barrier()
            return group.backend
        }
        XCTAssertEqual(try auto.map { try $0.get() }, [.hierarchical, .hierarchical, .hierarchical], "two ranks share host-a")
        let alone = try ThreadLauncher.run(
            worldSize: 3, options: ProcessGroupOptions(timeout: 30), perRank: { rank, options in options.hostIdentity = "host-\(rank)" }
        ) { group in
            try group.barrier()
            return group.backend
        }
        XCTAssertEqual(try alone.map { try $0.get() }, [.tcp, .tcp, .tcp], "one rank per host: nothing to share")
        let forced = try ThreadLauncher.run(
            worldSize: 3, options: ProcessGroupOptions(timeout: 30, backend: .shm), perRank: hosts
        ) { _ in () }
        for outcome in forced {
            guard case let .failure(error as CommError) = outcome, case let .bootstrap(_, detail) = error else {
                return XCTFail("forcing shm across hosts must fail: \(outcome)")
            }
            XCTAssertTrue(detail.contains("needs every rank on one host") && detail.contains("host-b"), detail)
        }
    }

    func testHalfPrecisionAllReduceAccumulatesInFloat32AndRoundsOnce() throws {
        // 1024 + 0.5 + 0.5 in fp16: rounding after each step gives 1024 (ties to even), fp32 accumulation 1025.
        let values: [Double] = [1024, 0.5, 0.5]
        let outcomes = try ThreadLauncher.run(worldSize: 3, options: ProcessGroupOptions(timeout: 30, backend: .shm)) { group in
            let tensor = Tensor(converting: [values[group.rank]], dtype: .float16)
            try group.allReduce(tensor)
            return tensor.element(0)
        }
        XCTAssertEqual(try outcomes.map { try $0.get() }, [1025, 1025, 1025])
    }
}
