import Foundation
import TandemComm
import TandemTestSupport
import XCTest

/// A job under attack: while three ranks run checked collectives (and build a new group every 40 operations,
/// so fresh peer ports keep opening), a stranger connects to the store and to every listening port of the
/// ranks with garbage, huge lengths, half-sent frames, idle sockets and hellos with a wrong token. The job must
/// finish with every result right, the ranks' memory must stay within a bound, and each refused connection
/// must be logged once, with its address.
final class AdversarialPeerTests: XCTestCase {
    private enum Attack: CaseIterable { case garbage, hugeLength, halfFrame, idle, wrongToken }

    private struct Attempt {
        let attack: Attack
        /// The stranger's address for this connection ("127.1.x.y:port", unique: each connection comes from a
        /// loopback address of its own, as ports are reused).
        let address: String
        let store: Bool
    }

    func testAJobUnderAttackFinishesRightWithBoundedMemoryAndLogsEachRefusalOnce() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tandem-attack-\(getpid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let stopFile = directory.appendingPathComponent("stop").path

        let attacked = NSLock()
        var attempts: [Attempt] = []
        var memory: (baseline: [pid_t: Int], peak: [pid_t: Int]) = ([:], [:])
        let run = try BuiltProgram.run(
            BuiltProgram.tandem,
            ["launch", "--nproc-per-node", "3", "--master-port", "0", "--", BuiltProgram.worker, "soak", "seed=3", "regroup=40", "stop-file=\(stopFile)"],
            environment: ["TANDEM_BACKEND": "tcp"], timeout: 120
        ) { launcher in
            var ranks: [pid_t] = []
            var port: UInt16?
            // Until three ranks run with the store's port in their environment (a child just forked, not yet
            // exec'd, still shows the launcher's environment).
            for _ in 0..<500 where ranks.count < 3 || port == nil {
                usleep(10_000)
                ranks = childProcesses(of: launcher.processIdentifier)
                port = ranks.first.flatMap(Self.masterPort(of:))
            }
            let started = ranks
            guard started.count == 3, let storePort = port else {
                try? Data().write(to: URL(fileURLWithPath: stopFile))
                return XCTFail("the job did not start three ranks with a store port")
            }
            // One second unattacked: the baseline.
            memory.baseline = Self.peakResident(of: started, seconds: 1)
            let stranger = JoinableResult { () -> [Attempt] in
                Self.attack(ranks: started, storePort: storePort, seconds: 8)
            }
            memory.peak = Self.peakResident(of: started, seconds: 8)
            let made = (try? stranger.value.get()) ?? []
            attacked.withLock { attempts = made }
            // Past the store's hello deadline (5 s), every stranger is dealt with before the job ends.
            let after = Self.peakResident(of: started, seconds: 7)
            for (pid, resident) in after { memory.peak[pid] = max(memory.peak[pid] ?? 0, resident) }
            try? Data().write(to: URL(fileURLWithPath: stopFile))
        }

        XCTAssertEqual(run.status, 0, run.output)
        let results = run.lines(containing: "RESULT rank=")
        XCTAssertEqual(results.count, 3, run.output)
        for line in results {
            XCTAssertTrue(line.contains(" wrong=0 "), line)
            XCTAssertFalse(line.contains(" ops=0 "), line)
            XCTAssertFalse(line.contains(" regroups=0 "), line)
        }

        let made = attacked.withLock { attempts }
        let storeAttempts = made.filter(\.store)
        let peerAttempts = made.filter { !$0.store }
        XCTAssertGreaterThan(storeAttempts.count, 100, "the stranger barely reached the store")
        let logLines = run.output.split(separator: "\n").filter { $0.contains("tandem warning:") }
        // Count lines naming the address exactly (followed by a non-digit or the line's end).
        func mentions(_ attempt: Attempt) -> Int {
            logLines.filter { line in
                line.ranges(of: attempt.address).contains { range in range.upperBound == line.endIndex || !line[range.upperBound].isNumber }
            }.count
        }
        for attempt in storeAttempts {
            XCTAssertEqual(mentions(attempt), 1, "store connection from \(attempt.address) (\(attempt.attack)) logged \(mentions(attempt)) times")
        }
        var peerLogged = 0
        for attempt in peerAttempts {
            let count = mentions(attempt)
            XCTAssertLessThanOrEqual(count, 1, "peer connection from \(attempt.address) (\(attempt.attack)) logged \(count) times")
            peerLogged += count
        }
        var growth: [Int] = []
        for (pid, baseline) in memory.baseline {
            let grown = (memory.peak[pid] ?? 0) - baseline
            growth.append(grown)
            XCTAssertLessThan(grown, 64 << 20, "rank pid \(pid) grew from \(baseline >> 20) MiB by \(grown >> 20) MiB under attack")
        }
        print("ATTACK store=\(storeAttempts.count) peer=\(peerAttempts.count) peer_logged=\(peerLogged) "
            + "kinds=\(Dictionary(grouping: made) { "\($0.attack)" }.mapValues(\.count).sorted { $0.key < $1.key }) "
            + "baseline_mib=\(memory.baseline.values.sorted().map { $0 >> 20 }) growth_kib=\(growth.sorted().map { $0 >> 10 }) "
            + results.joined(separator: " | "))
    }

    // MARK: - The stranger

    /// Connects again and again for `seconds` to the store and to whatever the ranks listen on, each time with a
    /// random attack; keeps up to 48 idle or half-sent connections open at once.
    private static func attack(ranks: [pid_t], storePort: UInt16, seconds: Double) -> [Attempt] {
        var generator = SystemRandomNumberGenerator()
        var attempts: [Attempt] = []
        var open: [RawConnection] = []
        let end = Date(timeIntervalSinceNow: seconds)
        while Date() < end {
            let ports = listeningPorts(of: ranks)
            for port in ports.sorted() {
                let source = "127.1.\(attempts.count / 250 % 250).\(attempts.count % 250 + 1)"
                guard let connection = RawConnection(host: "127.0.0.1", port: port, from: source) else { continue }
                let attack = Attack.allCases.randomElement(using: &generator)!
                let store = port == storePort
                attempts.append(Attempt(attack: attack, address: "\(source):\(connection.localPort)", store: store))
                switch attack {
                case .garbage:
                    connection.send((0..<Int.random(in: 1...2048, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) })
                case .hugeLength:
                    connection.send([0xFF, 0xFF, 0xFF, 0x7F])
                    open.append(connection)
                case .halfFrame:
                    connection.send([100, 0, 0, 0] + Array(repeating: 0x41, count: 40))
                    open.append(connection)
                case .idle:
                    open.append(connection)
                case .wrongToken:
                    let token = Array("not-the-job-token-at-all".utf8)
                    connection.send(store ? frame([1] + lengthPrefixed(token)) : peerHello(token: token))
                    _ = connection.receive(upTo: 16, seconds: 0.2)
                }
                if open.count > 48 { open.removeFirst(8) }
            }
            usleep(ports.count > 1 ? 2_000 : 20_000)
        }
        return attempts
    }

    private static func lengthPrefixed(_ bytes: [UInt8]) -> [UInt8] {
        withUnsafeBytes(of: UInt32(bytes.count).littleEndian) { Array($0) } + bytes
    }

    private static func frame(_ body: [UInt8]) -> [UInt8] { lengthPrefixed(body) }

    /// A well-formed peer hello (TNDMHELO, token, group "world", rank 1 of 3, data channel) with `token`.
    private static func peerHello(token: [UInt8]) -> [UInt8] {
        var body = withUnsafeBytes(of: UInt64(0x4F4C_4548_4D44_4E54).littleEndian) { Array($0) }
        body += lengthPrefixed(token) + lengthPrefixed(Array("world".utf8))
        body += withUnsafeBytes(of: UInt32(1).littleEndian) { Array($0) } + withUnsafeBytes(of: UInt32(3).littleEndian) { Array($0) } + [1]
        return frame(body)
    }

    // MARK: - Looking at the ranks from outside

    /// MASTER_PORT from a rank's environment.
    private static func masterPort(of pid: pid_t) -> UInt16? {
        guard let environment = FileManager.default.contents(atPath: "/proc/\(pid)/environ") else { return nil }
        return environment.split(separator: 0).lazy.map { String(decoding: $0, as: UTF8.self) }
            .first { $0.hasPrefix("MASTER_PORT=") }.flatMap { UInt16($0.dropFirst("MASTER_PORT=".count)) }
    }

    /// The TCP ports the processes listen on (their socket descriptors matched against /proc/net/tcp).
    private static func listeningPorts(of pids: [pid_t]) -> Set<UInt16> {
        var inodes = Set<String>()
        for pid in pids {
            let descriptors = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")) ?? []
            for descriptor in descriptors {
                guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\(descriptor)"),
                    target.hasPrefix("socket:[")
                else { continue }
                inodes.insert(String(target.dropFirst(8).dropLast()))
            }
        }
        guard let table = try? String(contentsOfFile: "/proc/net/tcp", encoding: .utf8) else { return [] }
        var ports = Set<UInt16>()
        for line in table.split(separator: "\n").dropFirst() {
            let fields = line.split(separator: " ")
            // sl local rem st tx:rx tr:when retrnsmt uid timeout inode
            guard fields.count > 9, fields[3] == "0A", inodes.contains(String(fields[9])),
                let port = fields[1].split(separator: ":").last.flatMap({ UInt16($0, radix: 16) })
            else { continue }
            ports.insert(port)
        }
        return ports
    }

    /// The largest VmRSS of each process over `seconds`, sampled every 50 ms.
    private static func peakResident(of pids: [pid_t], seconds: Double) -> [pid_t: Int] {
        var peak: [pid_t: Int] = [:]
        let end = Date(timeIntervalSinceNow: seconds)
        while Date() < end {
            for pid in pids {
                guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
                    let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
                    let kib = Int(line.split(separator: " ")[1])
                else { continue }
                peak[pid] = max(peak[pid] ?? 0, kib * 1024)
            }
            usleep(50_000)
        }
        return peak
    }
}
