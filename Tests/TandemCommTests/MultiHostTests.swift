import Foundation
import TandemTestSupport
import XCTest

/// A job across two hosts: two network namespaces joined by a veth pair (each its own loopback, addresses and
/// interfaces), one `tandem launch` per "host", as a user would run on two machines.
final class MultiHostTests: XCTestCase {
    func testAJobAcrossTwoHostsRunsCollectivesOverTheNamedInterface() throws {
        guard getuid() == 0, FileManager.default.isExecutableFile(atPath: "/usr/sbin/ip") || FileManager.default.isExecutableFile(atPath: "/sbin/ip") else {
            throw XCTSkip("needs root and iproute2 to create network namespaces (CI runs as root)")
        }
        let ip = FileManager.default.isExecutableFile(atPath: "/usr/sbin/ip") ? "/usr/sbin/ip" : "/sbin/ip"
        let tag = String(getpid() % 100_000)
        let (hostA, hostB) = ("tandem-a-\(tag)", "tandem-b-\(tag)")
        let (linkA, linkB) = ("tva\(tag)", "tvb\(tag)")
        func run(_ arguments: [String]) throws {
            let result = try BuiltProgram.run(ip, arguments, timeout: 20)
            XCTAssertEqual(result.status, 0, "ip \(arguments.joined(separator: " ")): \(result.output)")
        }
        defer {
            _ = try? BuiltProgram.run(ip, ["netns", "del", hostA], timeout: 20)
            _ = try? BuiltProgram.run(ip, ["netns", "del", hostB], timeout: 20)
        }
        try run(["netns", "add", hostA])
        try run(["netns", "add", hostB])
        try run(["link", "add", linkA, "type", "veth", "peer", "name", linkB])
        try run(["link", "set", linkA, "netns", hostA])
        try run(["link", "set", linkB, "netns", hostB])
        for (host, link, address) in [(hostA, linkA, "10.231.0.1/24"), (hostB, linkB, "10.231.0.2/24")] {
            try run(["netns", "exec", host, "ip", "addr", "add", address, "dev", link])
            try run(["netns", "exec", host, "ip", "link", "set", link, "up"])
            try run(["netns", "exec", host, "ip", "link", "set", "lo", "up"])
        }
        func node(_ rank: Int, host: String) -> [String] {
            ["netns", "exec", host, BuiltProgram.tandem, "launch", "--nproc-per-node", "2", "--nnodes", "2", "--node-rank",
             String(rank), "--master-addr", "10.231.0.1", "--master-port", "29500", "--", BuiltProgram.worker, "collectives"]
        }
        let environment = ["TANDEM_JOB_TOKEN": "multi-host-\(tag)", "TANDEM_COMM_TIMEOUT_S": "30"]
        let firstArguments = node(0, host: hostA)
        // Network namespaces share the kernel (boot id) and /dev/shm: each "host" names itself, as two machines would.
        let firstEnvironment = environment.merging(["TANDEM_SOCKET_IFNAME": linkA, "TANDEM_HOST_ID": hostA]) { $1 }
        let first = JoinableResult { () throws -> BuiltProgram.Run in
            try BuiltProgram.run(ip, firstArguments, environment: firstEnvironment, timeout: 60)
        }
        let second = try BuiltProgram.run(ip, node(1, host: hostB), environment: environment.merging(["TANDEM_SOCKET_IFNAME": linkB, "TANDEM_HOST_ID": hostB]) { $1 }, timeout: 60)
        let firstRun = try first.value.get()
        XCTAssertEqual(firstRun.status, 0, firstRun.output)
        XCTAssertEqual(second.status, 0, second.output)
        // Two ranks per host: shared memory inside each, TCP between the hosts' leaders.
        for rank in 0..<4 {
            let output = rank < 2 ? firstRun : second
            XCTAssertEqual(
                output.lines(containing: "RESULT rank=\(rank) world=4 backend=hier allReduce=true allGather=true objects=true").count, 1,
                output.output)
        }
    }
}
