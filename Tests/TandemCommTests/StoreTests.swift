import Foundation
import TandemComm
import TandemTestSupport
import XCTest

final class StoreTests: XCTestCase {
    private var server: TCPStoreServer!

    override func setUpWithError() throws {
        server = try TCPStoreServer(host: "127.0.0.1", port: 0, token: "secret")
    }

    override func tearDown() {
        server.stop()
    }

    private func client(token: String = "secret") throws -> TCPStore {
        try TCPStore(host: "127.0.0.1", port: server.port, token: token, timeout: 5)
    }

    func testSetThenGetReturnsTheValueAndOverwriteReplacesIt() throws {
        let store = try client()
        try store.set("a", [1, 2, 3])
        XCTAssertEqual(try store.get("a", timeout: 1), [1, 2, 3])
        try store.set("a", [])
        XCTAssertEqual(try store.get("a", timeout: 1), [])
    }

    func testGetBlocksUntilAnotherClientSetsTheKey() throws {
        let reader = try client()
        let writer = try client()
        let waiting = JoinableResult { try reader.getString("late", timeout: 10) }
        Thread.sleep(forTimeInterval: 0.2)
        try writer.set("late", string: "here")
        XCTAssertEqual(try waiting.value.get(), "here")
    }

    func testGetTimeoutNamesTheMissingKeyWithinItsBound() throws {
        let store = try client()
        let start = Date()
        XCTAssertThrowsError(try store.get("never", timeout: 0.5)) { error in
            XCTAssertEqual(error as? StoreError, .timeout(keys: ["never"], seconds: 0.5))
            XCTAssertTrue("\(error)".contains("never"))
        }
        let elapsed = Date().timeIntervalSince(start)
        XCTAssertGreaterThanOrEqual(elapsed, 0.5)
        XCTAssertLessThan(elapsed, 2)
    }

    func testWaitNamesOnlyTheKeysStillMissing() throws {
        let store = try client()
        try store.set("present", [1])
        XCTAssertThrowsError(try store.wait(["present", "absent1", "absent2"], timeout: 0.3)) { error in
            XCTAssertEqual(error as? StoreError, .timeout(keys: ["absent1", "absent2"], seconds: 0.3))
        }
        try store.set("absent1", [1])
        try store.set("absent2", [1])
        XCTAssertNoThrow(try store.wait(["present", "absent1", "absent2"], timeout: 1))
    }

    func testAddIsAtomicAcrossConcurrentClients() throws {
        let port = server.port
        let threads = (0..<8).map { _ in
            JoinableResult { () throws -> Void in
                let store = try TCPStore(host: "127.0.0.1", port: port, token: "secret", timeout: 5)
                for _ in 0..<100 { _ = try store.add("counter", 1) }
            }
        }
        for thread in threads { try thread.value.get() }
        XCTAssertEqual(try client().add("counter", 0), 800)
        XCTAssertEqual(try client().add("counter", -800), 0)
    }

    func testCompareSetFollowsTorchSemantics() throws {
        let store = try client()
        XCTAssertEqual(try store.compareSet("k", expected: [9], desired: [1]), [9], "absent key, non-empty expected: returns expected")
        XCTAssertEqual(try store.compareSet("k", expected: [], desired: [1]), [1], "absent key, empty expected: sets")
        XCTAssertEqual(try store.compareSet("k", expected: [7], desired: [2]), [1], "wrong expected: returns current")
        XCTAssertEqual(try store.compareSet("k", expected: [1], desired: [2]), [2], "right expected: swaps")
        XCTAssertEqual(try store.get("k", timeout: 1), [2])
    }

    func testDeleteAndNumKeys() throws {
        let store = try client()
        try store.set("x", [1])
        try store.set("y", [1])
        XCTAssertEqual(try store.numKeys(), 2)
        XCTAssertTrue(try store.delete("x"))
        XCTAssertFalse(try store.delete("x"))
        XCTAssertEqual(try store.numKeys(), 1)
    }

    func testPrefixStoreScopesKeys() throws {
        let base = try client()
        let tp = PrefixStore(prefix: "tp", base: base)
        try tp.set("addr", string: "a")
        XCTAssertEqual(try base.getString("tp/addr", timeout: 1), "a")
        XCTAssertThrowsError(try base.get("addr", timeout: 0.1))
        XCTAssertThrowsError(try tp.get("missing", timeout: 0.1)) { error in
            XCTAssertEqual(error as? StoreError, .timeout(keys: ["tp/missing"], seconds: 0.1))
        }
    }

    func testAClientWithoutTheTokenIsRefused() throws {
        XCTAssertThrowsError(try client(token: "guess")) { error in
            guard case .refused? = error as? StoreError else { return XCTFail("\(error)") }
            XCTAssertTrue("\(error)".contains("job token"))
        }
        // The server keeps serving legitimate clients.
        let store = try client()
        try store.set("still", [1])
        XCTAssertEqual(try store.get("still", timeout: 1), [1])
    }

    /// A hosted store listens on the address it was given: 127.0.0.1 only, not every interface.
    func testAHostedStoreListensOnlyOnItsAddress() throws {
        let store = try TCPStore(host: "127.0.0.1", port: 0, isServer: true, token: "secret", timeout: 5)
        defer { store.server?.stop() }
        let port = String(format: "%04X", try XCTUnwrap(store.server).port)
        // /proc/net/tcp: "sl local_address rem_address st …", addresses as hex IP:PORT, state 0A = LISTEN.
        let listening = try String(contentsOfFile: "/proc/net/tcp", encoding: .utf8).split(separator: "\n").compactMap { line -> String? in
            let fields = line.split(separator: " ")
            guard fields.count > 3, fields[1].hasSuffix(":\(port)"), fields[3] == "0A" else { return nil }
            return String(fields[1])
        }
        XCTAssertEqual(listening, ["0100007F:\(port)"])
    }

    /// Connections that never show the token cost the server almost nothing: a 256 MiB length before any hello
    /// allocates nothing (four of them took 1 GB before), and the server goes on serving.
    func testHugeLengthsBeforeTheHelloAllocateNothing() throws {
        func resident() throws -> Int {
            let status = try String(contentsOfFile: "/proc/self/status", encoding: .utf8)
            let line = try XCTUnwrap(status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") })
            return try XCTUnwrap(Int(line.split(separator: " ")[1])) * 1024
        }
        let before = try resident()
        // Four strangers each announce a 256 MiB frame and send nothing more.
        let strangers = (0..<4).compactMap { _ in RawConnection(host: "127.0.0.1", port: server.port) }
        XCTAssertEqual(strangers.count, 4)
        for stranger in strangers { XCTAssertTrue(stranger.send(withUnsafeBytes(of: UInt32(256 << 20).littleEndian) { Array($0) })) }
        Thread.sleep(forTimeInterval: 0.5)
        XCTAssertLessThan(try resident() - before, 64 << 20, "the server allocated for unauthenticated lengths")
        let store = try client()
        try store.set("served", [7])
        XCTAssertEqual(try store.get("served", timeout: 1), [7])
        withExtendedLifetime(strangers) {}  // connected (and silent) throughout
    }

    /// A port in use and a name that does not resolve say so, not "cannot reach the store … errno -2".
    func testAPortInUseAndAnUnknownHostAreNamed() throws {
        XCTAssertThrowsError(try TCPStore(host: "127.0.0.1", port: server.port, isServer: true, token: "secret", timeout: 1)) { error in
            XCTAssertTrue("\(error)".contains("cannot serve the store on 127.0.0.1:\(self.server.port): the port is in use"), "\(error)")
        }
        XCTAssertThrowsError(try TCPStore(host: "no-such-host.invalid", port: 29599, token: "secret", timeout: 0.5)) { error in
            XCTAssertTrue("\(error)".contains("looking up no-such-host.invalid failed: "), "\(error)")
            XCTAssertFalse("\(error)".contains("errno -"), "\(error)")
        }
    }

    func testAnUnreachableStoreNamesTheAddressTried() throws {
        let port = server.port
        server.stop()
        XCTAssertThrowsError(try TCPStore(host: "127.0.0.1", port: port, token: "secret", timeout: 0.5)) { error in
            guard case .connection? = error as? StoreError else { return XCTFail("\(error)") }
            XCTAssertTrue("\(error)".contains("127.0.0.1:\(port)"), "\(error)")
        }
    }

    func testABlockedGetFailsWhenTheServerStops() throws {
        let store = try client()
        let waiting = JoinableResult { try store.get("never", timeout: 30) }
        Thread.sleep(forTimeInterval: 0.2)
        let start = Date()
        server.stop()
        XCTAssertThrowsError(try waiting.value.get())
        XCTAssertLessThan(Date().timeIntervalSince(start), 2)
    }
}
