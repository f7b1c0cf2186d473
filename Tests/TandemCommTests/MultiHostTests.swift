import Foundation
import TandemTestSupport
import XCTest

/// A job across two hosts (`TwoHosts`: network namespaces joined by a veth pair), one `tandem launch` per host.
final class MultiHostTests: XCTestCase {
    func testAJobAcrossTwoHostsRunsCollectivesOverTheNamedInterface() throws {
        let hosts = try TwoHosts(self)
        let runs = try hosts.launch([BuiltProgram.worker, "collectives"], perHost: 2, token: "multi-host-job-token-\(getpid())", timeout: 60)
        XCTAssertEqual(runs[0].status, 0, runs[0].output)
        XCTAssertEqual(runs[1].status, 0, runs[1].output)
        // Two ranks per host: shared memory inside each, TCP between the hosts' leaders.
        for rank in 0..<4 {
            let output = runs[rank / 2]
            XCTAssertEqual(
                output.lines(containing: "RESULT rank=\(rank) world=4 backend=hier allReduce=true allGather=true objects=true").count, 1,
                output.output)
        }
    }

    /// A host whose link goes down — no FIN, no reset, as when a machine loses power or its cable — is declared
    /// lost by the other host's rank within TANDEM_PEER_TIMEOUT_S (3 s here; 1 s of slack for the monitor's
    /// wake-up and the worker's 20 ms poll), while no operation is in flight, and the error names the rank.
    func testAHostThatVanishesIsDeclaredLostWithinThePeerTimeout() throws {
        let hosts = try TwoHosts(self)
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("tandem-vanish-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        let directory = url.path
        let token = "vanishing-host-token-\(getpid())"
        let launches = JoinableResult {
            try hosts.launch(
                [BuiltProgram.worker, "await-peer-loss", directory], perHost: 1, token: token, timeout: 60,
                environment: ["TANDEM_PEER_TIMEOUT_S": "3"])
        }
        let ready = Date(timeIntervalSinceNow: 30)
        while Date() < ready && !(0..<2).allSatisfy({ FileManager.default.fileExists(atPath: "\(directory)/ready-\($0)") }) { usleep(20_000) }
        XCTAssertTrue(FileManager.default.fileExists(atPath: "\(directory)/ready-1"), "both ranks connected")
        usleep(1_500_000)  // past the keep-alive's idle second: the probes are what must notice
        let cut = Int64(Date().timeIntervalSince1970 * 1000)
        try hosts.setLink(of: 1, up: false)
        let runs = try launches.value.get()
        let line = try XCTUnwrap(runs[0].lines(containing: "LOST rank=0").first, runs[0].output)
        XCTAssertTrue(line.contains("lost rank 1"), line)
        let detected = try XCTUnwrap(line.components(separatedBy: "at_ms=").last?.split(separator: " ").first.flatMap { Int64($0) }, line)
        let seconds = Double(detected - cut) / 1000
        print("host 1's link cut; rank 0 declared it lost after \(seconds) s (TANDEM_PEER_TIMEOUT_S=3)")
        XCTAssertGreaterThan(seconds, 1, "not before the probes could have failed: \(line)")
        XCTAssertLessThan(seconds, 4, line)
    }

    /// Two hosts on a shaped link (`tandem-shaper`: 100 Mbit/s, 5 ms one-way), one rank each, exchanging messages
    /// with `tandem bench comm --op send_recv` over TCP: a message never arrives before the delay, and 1 MiB takes
    /// at least its time on the wire (84 ms at 100 Mbit/s) on top. Upper bounds are loose — this VM's timers add to
    /// both, and two ranks exchanging in lock step settle a delay apart, so an iteration takes up to two delays —
    /// there to catch a link that holds packets far longer than its shape.
    func testAShapedLinkDelaysAndPacesWhatCrossesIt() throws {
        let hosts = try TwoHosts(self, shape: .init(rate: "100mbit", delay: "5ms"))
        let runs = try hosts.launch(
            [BuiltProgram.tandem, "bench", "comm", "--op", "send_recv", "--backend", "tcp", "--min-bytes", "64", "--max-bytes", "1M",
             "--step-factor", "16384", "--iters", "4", "--warmup", "1", "--json"],
            perHost: 1, token: "shaped-link-token-\(getpid())", timeout: 90)
        XCTAssertEqual(runs[0].status, 0, runs[0].output)
        XCTAssertEqual(runs[1].status, 0, runs[1].output)
        let line = try XCTUnwrap(runs[0].output.split(separator: "\n").last { $0.contains("[{") }, runs[0].output)
        let json = line[line.range(of: "[{")!.lowerBound...]
        let rows = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [[String: Any]], String(line))
        XCTAssertEqual(rows.map { $0["bytes"] as? Int }, [64, 1 << 20], String(line))
        for row in rows { XCTAssertEqual(row["wrong"] as? Int, 0, String(line)) }
        let small = try XCTUnwrap(rows.first?["time_us"] as? Double), large = try XCTUnwrap(rows.last?["time_us"] as? Double)
        print("shaped link 100mbit/5ms: send_recv 64 B \(small) µs, 1 MiB \(large) µs")
        XCTAssertGreaterThanOrEqual(small, 5_000, "a message crossed faster than the link's delay")
        XCTAssertLessThan(small, 50_000, String(line))
        let wire = 5_000 + Double(1 << 20) * 8 / 100e6 * 1e6
        XCTAssertGreaterThanOrEqual(large, wire, "1 MiB crossed faster than 100 Mbit/s allows")
        XCTAssertLessThan(large, 3 * wire, String(line))
    }
}
