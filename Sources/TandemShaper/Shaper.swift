import ArgumentParser
import CTandemSystem
import Foundation
import Glibc

/// `tandem-shaper`: links between network-namespace hosts with a rate and a delay, for tests and benchmarks on
/// kernels without `tc netem`. Each host gets a TUN interface in its namespace; this process forwards the IPv4
/// packets between them, holding each as a link of that shape would. Runs until SIGTERM or SIGINT, then prints what
/// it forwarded, dropped and how late it delivered to stderr. Needs root (CAP_NET_ADMIN) and iproute2.
@main
struct Shaper: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tandem-shaper",
        abstract: "Links with a rate and a delay between network namespaces (a userspace stand-in for tc netem).",
        discussion: """
            Example: two namespaces on a 1 Gbit/s link with 200 µs one-way delay —
              tandem-shaper --rate 1gbit --delay 200us --host ns-a,tsa0,10.231.0.1 --host ns-b,tsb0,10.231.0.2
            Prints `ready` on stdout once the interfaces are up.
            """)

    @Option(help: "Each host's sending rate: a number and bit, kbit, mbit or gbit (per second), as tc writes it.")
    var rate: String

    @Option(help: "One-way delay each packet gets after its last bit left: a number and ns, us, ms or s.")
    var delay: String

    @Option(help: "The interfaces' MTU (bytes per packet; 9000 is a cluster's jumbo frame).")
    var mtu = 9000

    @Option(name: .customLong("queue-packets"), help: "How many full packets a host's link queues before it drops (tail drop, as netem's limit).")
    var queuePackets = 1000

    @Option(help: "The addresses' prefix length (the subnet all hosts share).")
    var prefix = 24

    @Option(name: .customLong("host"), help: "NAMESPACE,INTERFACE,ADDRESS of one host (at least two): the existing namespace, the TUN interface to create in it, and its IPv4 address.")
    var hosts: [String] = []

    struct Host {
        var namespace: String, interface: String, address: String, number: UInt32
    }

    func validate() throws {
        guard LinkShape.rate(rate) != nil else { throw ValidationError("--rate \(rate) is not a rate such as 1gbit, 100mbit or 2.5gbit") }
        guard LinkShape.delay(delay) != nil else { throw ValidationError("--delay \(delay) is not a delay such as 200us, 2ms or 0ms (under 60 s)") }
        guard (576...65_535).contains(mtu) else { throw ValidationError("--mtu must be 576…65535 bytes, got \(mtu)") }
        guard queuePackets >= 1 else { throw ValidationError("--queue-packets must be ≥ 1, got \(queuePackets)") }
        guard (1...30).contains(prefix) else { throw ValidationError("--prefix must be 1…30, got \(prefix)") }
        let parsed = try parsedHosts()
        guard parsed.count >= 2 else { throw ValidationError("give at least two --host NAMESPACE,INTERFACE,ADDRESS (got \(parsed.count))") }
        for (index, host) in parsed.enumerated() {
            if let other = parsed[..<index].first(where: { $0.number == host.number }) {
                throw ValidationError("--host \(host.namespace) and --host \(other.namespace) both have address \(host.address)")
            }
            if let other = parsed[..<index].first(where: { $0.interface == host.interface }) {
                throw ValidationError("--host \(host.namespace) and --host \(other.namespace) both name interface \(host.interface)")
            }
        }
    }

    private func parsedHosts() throws -> [Host] {
        try hosts.map { text in
            let parts = text.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            guard parts.count == 3, !parts[0].isEmpty else {
                throw ValidationError("--host \(text) is not NAMESPACE,INTERFACE,ADDRESS")
            }
            guard (1...15).contains(parts[1].utf8.count), parts[1].allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }) else {
                throw ValidationError("--host \(text): interface name \(parts[1]) must be 1–15 letters, digits, - or _")
            }
            let octets = parts[2].split(separator: ".", omittingEmptySubsequences: false).compactMap { UInt32($0) }
            guard octets.count == 4, octets.allSatisfy({ $0 < 256 }), parts[2].split(separator: ".").count == 4 else {
                throw ValidationError("--host \(text): \(parts[2]) is not an IPv4 address")
            }
            return Host(namespace: parts[0], interface: parts[1], address: parts[2], number: octets.reduce(0) { $0 << 8 | $1 })
        }
    }

    func run() throws {
        _ = tandem_kill_with_parent()
        let shape = LinkShape(bitsPerSecond: LinkShape.rate(rate)!, delayNanoseconds: LinkShape.delay(delay)!)
        let ip = try Self.ipProgram()
        var ports: [HostPort] = []
        for host in try parsedHosts() {
            let descriptor = tandem_tun_open(host.interface)
            guard descriptor >= 0 else {
                Self.fail("cannot create TUN interface \(host.interface): \(String(cString: strerror(errno))) (needs root and /dev/net/tun)")
            }
            try Self.run(ip, ["link", "set", host.interface, "netns", host.namespace])
            try Self.run(ip, ["-n", host.namespace, "addr", "add", "\(host.address)/\(prefix)", "dev", host.interface])
            try Self.run(ip, ["-n", host.namespace, "link", "set", host.interface, "mtu", String(mtu), "up"])
            ports.append(HostPort(name: "\(host.namespace)/\(host.interface)", address: host.number, descriptor: descriptor))
        }
        let routes = Dictionary(uniqueKeysWithValues: ports.map { ($0.address, $0) })
        // The threads inherit the blocked signals; the main thread takes them with sigwait.
        var signals = sigset_t()
        sigemptyset(&signals)
        for signal in [SIGTERM, SIGINT, SIGHUP] { sigaddset(&signals, signal) }
        pthread_sigmask(SIG_BLOCK, &signals, nil)
        let queueNanoseconds = shape.serialization(bytes: queuePackets * mtu)
        let mtu = mtu
        for port in ports {
            Thread { port.forward(routes: routes, shape: shape, queueNanoseconds: queueNanoseconds, mtu: mtu) }.start()
            Thread { port.deliver() }.start()
        }
        FileHandle.standardOutput.write("ready \(ports.map(\.name).joined(separator: " "))\n".data(using: .utf8)!)
        var received: Int32 = 0
        sigwait(&signals, &received)
        for port in ports {
            let counters = port.snapshot()
            let meanLate = counters.deliveredPackets > 0 ? Double(counters.lateSum) / Double(counters.deliveredPackets) / 1000 : 0
            FileHandle.standardError.write(
                """
                tandem-shaper: \(port.name): sent \(counters.sentPackets) packets (\(counters.sentBytes) bytes), dropped \(counters.dropped), \
                unroutable \(counters.unroutable); delivered \(counters.deliveredPackets) packets (\(counters.deliveredBytes) bytes), \
                late by \(String(format: "%.1f", meanLate)) µs on average, \(String(format: "%.1f", Double(counters.lateMax) / 1000)) µs at most

                """.data(using: .utf8)!)
        }
    }

    /// Prints `message` to stderr and exits with status 1.
    static func fail(_ message: String) -> Never {
        FileHandle.standardError.write("tandem-shaper: \(message)\n".data(using: .utf8)!)
        Glibc.exit(1)
    }

    private static func ipProgram() throws -> String {
        guard let found = ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"].first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            fail("needs iproute2's ip, found in none of /usr/sbin, /sbin, /usr/bin, /bin")
        }
        return found
    }

    private static func run(_ ip: String, _ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: ip)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardError = pipe
        try process.run()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            fail("ip \(arguments.joined(separator: " ")) failed: \(String(decoding: output, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))")
        }
    }
}
