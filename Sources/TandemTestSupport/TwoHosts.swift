import Foundation
import XCTest

/// Two "hosts" on one machine for multi-host tests: network namespaces (each with its own loopback, address and
/// interface) joined by a veth pair, or by a link with a rate and a delay (`tandem-shaper`, TUN interfaces); removed
/// when the test ends. Each job runs one `tandem launch` per host, as a user would on two machines. Needs root and
/// iproute2 (CI has both); otherwise the test is skipped.
public struct TwoHosts: Sendable {
    /// A link's rate and one-way delay, as `tc netem` and `tandem-shaper` write them (`1gbit`, `200us`).
    public struct Shape: Sendable {
        public var rate: String
        public var delay: String
        public init(rate: String, delay: String) {
            self.rate = rate
            self.delay = delay
        }
    }

    /// The namespaces, the interfaces inside them (veth ends, or the shaper's TUN interfaces), and their addresses
    /// (host 0 holds the store).
    public let names: [String]
    public let links: [String]
    public let addresses = ["10.231.0.1", "10.231.0.2"]
    private let ip: String

    /// Creates the namespaces, joined by a veth pair or, with `shape`, by `tandem-shaper`'s link of that shape
    /// (stopped when the test ends); `XCTSkip` without root or iproute2 (or, with a shape, /dev/net/tun).
    public init(_ test: XCTestCase, shape: Shape? = nil) throws {
        guard getuid() == 0, let found = ["/usr/sbin/ip", "/sbin/ip"].first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw XCTSkip("needs root and iproute2 to create network namespaces (CI runs as root)")
        }
        ip = found
        if shape != nil, !FileManager.default.fileExists(atPath: "/dev/net/tun") {
            throw XCTSkip("needs /dev/net/tun for tandem-shaper's links")
        }
        // Random, not from the pid: a namespace left by a killed run must not collide with a later test's (the pid
        // modulo 10⁵ and 100 random values once did); at most 8 characters, so "tva" + tag fits an interface name.
        let tag = String(UInt64.random(in: 0..<(1 << 40)), radix: 36)
        names = ["tandem-a-\(tag)", "tandem-b-\(tag)"]
        links = ["tva\(tag)", "tvb\(tag)"]
        let (names, ip) = (names, ip)
        test.addTeardownBlock {
            for name in names { _ = try? BuiltProgram.run(ip, ["netns", "del", name], timeout: 20) }
        }
        for name in names {
            try run(["netns", "add", name])
            try run(["netns", "exec", name, "ip", "link", "set", "lo", "up"])
        }
        if let shape {
            try startShaper(shape, test)
            return
        }
        try run(["link", "add", links[0], "type", "veth", "peer", "name", links[1]])
        for host in 0..<2 {
            try run(["link", "set", links[host], "netns", names[host]])
            try run(["netns", "exec", names[host], "ip", "addr", "add", addresses[host] + "/24", "dev", links[host]])
            try run(["netns", "exec", names[host], "ip", "link", "set", links[host], "up"])
        }
    }

    /// Starts `tandem-shaper` with one TUN interface per host and waits for its `ready`; at the end of the test,
    /// stops it (before the namespaces go) and prints what it counted.
    private func startShaper(_ shape: Shape, _ test: XCTestCase) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: BuiltProgram.shaper)
        process.arguments = ["--rate", shape.rate, "--delay", shape.delay] + (0..<2).flatMap { ["--host", "\(names[$0]),\(links[$0]),\(addresses[$0])"] }
        let output = Pipe()
        let errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        let collector = OutputCollector(errors.fileHandleForReading)
        test.addTeardownBlock {
            process.terminate()
            process.waitUntilExit()
            print(collector.finish(), terminator: "")
        }
        var line = Data()
        while let byte = try output.fileHandleForReading.read(upToCount: 1), !byte.isEmpty, byte != Data("\n".utf8) { line += byte }
        guard String(decoding: line, as: UTF8.self).hasPrefix("ready") else {
            process.waitUntilExit()
            throw ShaperFailed(message: "tandem-shaper did not start: \(collector.finish())")
        }
    }

    private struct ShaperFailed: Error, CustomStringConvertible {
        var message: String
        var description: String { message }
    }

    /// Takes `host`'s link down (or up): its peers get no FIN and no reset, as when a machine loses power or
    /// its cable.
    public func setLink(of host: Int, up: Bool) throws {
        try run(["netns", "exec", names[host], "ip", "link", "set", links[host], up ? "up" : "down"])
    }

    private func run(_ arguments: [String]) throws {
        let result = try BuiltProgram.run(ip, arguments, timeout: 20)
        XCTAssertEqual(result.status, 0, "ip \(arguments.joined(separator: " ")): \(result.output)")
    }

    /// Runs `program` as `perHost` ranks on each host (`tandem launch --nnodes 2`), both hosts at once, and
    /// returns each host's run. Namespaces share the kernel (boot id) and /dev/shm, so each host names itself
    /// with `TANDEM_HOST_ID`, as two machines would differ; `TANDEM_SOCKET_IFNAME` names its interface.
    public func launch(
        _ program: [String], perHost: Int, token: String, timeout: Double = 120, environment extra: [String: String] = [:]
    ) throws -> [BuiltProgram.Run] {
        func arguments(_ host: Int) -> [String] {
            ["netns", "exec", names[host], BuiltProgram.tandem, "launch", "--nproc-per-node", String(perHost), "--nnodes", "2",
             "--node-rank", String(host), "--master-addr", addresses[0], "--master-port", "29500", "--"] + program
        }
        func environment(_ host: Int) -> [String: String] {
            ["TANDEM_JOB_TOKEN": token, "TANDEM_COMM_TIMEOUT_S": "30", "TANDEM_SOCKET_IFNAME": links[host], "TANDEM_HOST_ID": names[host]]
                .merging(extra) { $1 }
        }
        let (ip, first, firstEnvironment) = (ip, arguments(0), environment(0))
        let firstRun = JoinableResult { try BuiltProgram.run(ip, first, environment: firstEnvironment, timeout: timeout) }
        let secondRun = try BuiltProgram.run(ip, arguments(1), environment: environment(1), timeout: timeout)
        return [try firstRun.value.get(), secondRun]
    }

    /// Runs `program` as `perHost` ranks on each host under one OpenMPI `mpirun`, started on host 0, which starts
    /// its daemon on host 1 the way it would over ssh — through an rsh agent script that runs the command in
    /// host 1's namespace. A wrapper names each rank's host and interface after the namespace it runs in
    /// (`TANDEM_HOST_ID`, `TANDEM_SOCKET_IFNAME`). MPI's own traffic is held to TCP over the link (its shared-memory
    /// transport would treat both namespaces as one machine, which they are not to each other).
    public func mpirun(
        _ program: [String], perHost: Int, in directory: URL, timeout: Double = 120, environment extra: [String: String] = [:]
    ) throws -> BuiltProgram.Run {
        let agent = directory.appendingPathComponent("netns-agent.sh")
        let wrapper = directory.appendingPathComponent("netns-rank.sh")
        try """
            #!/bin/sh
            # mpirun's rsh agent: `agent HOST COMMAND…` runs COMMAND in HOST's namespace, as ssh would on HOST.
            host=$1; shift
            case $host in
              \(addresses[0])) ns=\(names[0]) ;;
              \(addresses[1])) ns=\(names[1]) ;;
              *) echo "netns-agent: unknown host $host" >&2; exit 1 ;;
            esac
            exec \(ip) netns exec "$ns" sh -c "$*"

            """.write(to: agent, atomically: true, encoding: .utf8)
        try """
            #!/bin/sh
            case $(\(ip) netns identify $$) in
              \(names[0])) export TANDEM_HOST_ID=\(names[0]) TANDEM_SOCKET_IFNAME=\(links[0]) ;;
              \(names[1])) export TANDEM_HOST_ID=\(names[1]) TANDEM_SOCKET_IFNAME=\(links[1]) ;;
            esac
            exec "$@"

            """.write(to: wrapper, atomically: true, encoding: .utf8)
        for script in [agent, wrapper] { try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: script.path) }
        let subnet = addresses[0].split(separator: ".").prefix(3).joined(separator: ".") + ".0/24"
        var environment = ["OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1", "TANDEM_COMM_TIMEOUT_S": "30"]
        for (key, value) in extra { environment[key] = value }
        let forwarded = environment.keys.filter { $0.hasPrefix("TANDEM_") }.sorted().flatMap { ["-x", $0] }
        let arguments =
            ["netns", "exec", names[0], "mpirun", "--oversubscribe", "--host", "\(addresses[0]):\(perHost),\(addresses[1]):\(perHost)",
             "-np", String(2 * perHost), "--mca", "plm_rsh_agent", agent.path, "--mca", "oob_tcp_if_include", subnet,
             "--mca", "btl", "tcp,self", "--mca", "btl_tcp_if_include", subnet, "-x", "MASTER_ADDR=\(addresses[0])"]
            + forwarded + [wrapper.path] + program
        return try BuiltProgram.run(ip, arguments, environment: environment, timeout: timeout)
    }
}
