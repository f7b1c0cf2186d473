import Foundation
import TandemTestSupport
import XCTest

/// `tandem-shaper` (the shaped links of the multi-host tests and benchmarks) refuses bad arguments by name, and a
/// namespace that does not exist by the `ip` command that failed; `MultiHostTests` checks what its links do.
final class ShaperTests: XCTestCase {
    private let hosts = ["--host", "ns-a,tsa0,10.240.0.1", "--host", "ns-b,tsb0,10.240.0.2"]

    func testBadArgumentsAreRefusedByName() throws {
        let cases: [([String], String)] = [
            (["--rate", "fast", "--delay", "1ms"] + hosts, "--rate fast is not a rate"),
            (["--rate", "0gbit", "--delay", "1ms"] + hosts, "--rate 0gbit is not a rate"),
            (["--rate", "1gbit", "--delay", "soon"] + hosts, "--delay soon is not a delay"),
            (["--rate", "1gbit", "--delay=-1ms"] + hosts, "--delay -1ms is not a delay"),
            (["--rate", "1gbit", "--delay", "1ms", "--mtu", "100"] + hosts, "--mtu must be 576…65535 bytes, got 100"),
            (["--rate", "1gbit", "--delay", "1ms", "--host", "ns-a,tsa0,10.240.0.1"], "at least two --host"),
            (["--rate", "1gbit", "--delay", "1ms", "--host", "ns-a,tsa0", "--host", "ns-b,tsb0,10.240.0.2"], "--host ns-a,tsa0 is not NAMESPACE,INTERFACE,ADDRESS"),
            (["--rate", "1gbit", "--delay", "1ms", "--host", "ns-a,tsa0,10.240.0.300", "--host", "ns-b,tsb0,10.240.0.2"], "10.240.0.300 is not an IPv4 address"),
            (["--rate", "1gbit", "--delay", "1ms", "--host", "ns-a,an-interface-name-too-long,10.240.0.1", "--host", "ns-b,tsb0,10.240.0.2"],
             "must be 1–15 letters"),
            (["--rate", "1gbit", "--delay", "1ms", "--host", "ns-a,tsa0,10.240.0.1", "--host", "ns-b,tsb0,10.240.0.1"], "both have address 10.240.0.1"),
            (["--rate", "1gbit", "--delay", "1ms", "--host", "ns-a,tsa0,10.240.0.1", "--host", "ns-b,tsa0,10.240.0.2"], "both name interface tsa0"),
        ]
        for (arguments, expected) in cases {
            let run = try BuiltProgram.run(BuiltProgram.shaper, arguments, timeout: 30)
            XCTAssertNotEqual(run.status, 0, arguments.joined(separator: " "))
            XCTAssertTrue(run.output.contains(expected), "\(arguments.joined(separator: " ")): expected \(expected) in \(run.output)")
        }
    }

    func testANamespaceThatDoesNotExistIsNamed() throws {
        guard getuid() == 0 else { throw XCTSkip("needs root to create TUN interfaces (CI runs as root)") }
        let missing = "tandem-missing-\(getpid())"
        let run = try BuiltProgram.run(
            BuiltProgram.shaper, ["--rate", "1gbit", "--delay", "1ms", "--host", "\(missing),tsm\(getpid() % 100_000),10.240.0.1", "--host",
             "\(missing)-b,tsn\(getpid() % 100_000),10.240.0.2"], timeout: 30)
        XCTAssertEqual(run.status, 1, run.output)
        XCTAssertTrue(run.output.contains("ip link set tsm\(getpid() % 100_000) netns \(missing) failed"), run.output)
        XCTAssertFalse(run.output.contains("ready"), run.output)
    }
}
