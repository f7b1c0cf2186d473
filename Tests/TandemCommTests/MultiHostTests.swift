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
}
