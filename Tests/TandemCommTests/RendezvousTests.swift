import TandemComm
import XCTest

final class RendezvousTests: XCTestCase {
    private let valid = ["MASTER_ADDR": "10.0.0.1", "MASTER_PORT": "29500", "WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"]

    func testReadsTorchrunVariables() throws {
        let rendezvous = try Rendezvous.fromEnvironment(valid)
        XCTAssertEqual(rendezvous, Rendezvous(masterAddress: "10.0.0.1", masterPort: 29500, rank: 3, worldSize: 4, localRank: 1, localWorldSize: 2))
    }

    func testRankNotBelowWorldSizeIsRejectedNamingTheVariable() {
        var environment = valid
        environment["RANK"] = "4"
        XCTAssertThrowsError(try Rendezvous.fromEnvironment(environment)) { error in
            XCTAssertEqual(error as? ConfigError, .invalidValue(name: "RANK", value: "4", expected: "an integer in 0..<WORLD_SIZE (0…3)"))
        }
    }

    func testMissingAndMalformedValuesAreNamed() {
        for (name, value) in [("MASTER_ADDR", nil), ("WORLD_SIZE", "four"), ("MASTER_PORT", "70000"), ("LOCAL_RANK", "2")] as [(String, String?)] {
            var environment = valid
            environment[name] = value
            XCTAssertThrowsError(try Rendezvous.fromEnvironment(environment)) { error in
                XCTAssertTrue("\(error)".contains(name), "\(name): \(error)")
            }
        }
    }

    func testParsesTCPURLsIncludingIPv6() throws {
        XCTAssertEqual(try Rendezvous.fromURL("tcp://host-1:1234", rank: 0, worldSize: 2).masterAddress, "host-1")
        let six = try Rendezvous.fromURL("tcp://[::1]:29500", rank: 1, worldSize: 2)
        XCTAssertEqual(six.masterAddress, "::1")
        XCTAssertEqual(six.masterPort, 29500)
        for bad in ["http://h:1", "tcp://h", "tcp://:5", "tcp://h:0"] {
            XCTAssertThrowsError(try Rendezvous.fromURL(bad, rank: 0, worldSize: 1), bad)
        }
    }

    func testInitializeWithAnUnreachableMasterNamesTheAddress() {
        let rendezvous = Rendezvous(masterAddress: "127.0.0.1", masterPort: 1, rank: 1, worldSize: 2)
        XCTAssertThrowsError(try ProcessGroup.initialize(rendezvous, options: ProcessGroupOptions(timeout: 0.5, token: "t"))) { error in
            XCTAssertTrue("\(error)".contains("127.0.0.1:1"), "\(error)")
        }
    }

    func testInitializeWithoutATokenExplainsHowToGetOne() {
        let rendezvous = Rendezvous(masterAddress: "127.0.0.1", masterPort: 29999, rank: 0, worldSize: 2)
        XCTAssertThrowsError(try ProcessGroup.initialize(rendezvous, options: ProcessGroupOptions(timeout: 0.5))) { error in
            XCTAssertTrue("\(error)".contains("TANDEM_JOB_TOKEN"), "\(error)")
        }
    }

    func testAWorldOfOneNeedsNoPeersAndReturnsAtOnce() throws {
        let rendezvous = Rendezvous(masterAddress: "127.0.0.1", masterPort: 0, rank: 0, worldSize: 1)
        let group = try ProcessGroup.initialize(rendezvous, options: ProcessGroupOptions(timeout: 5, token: "t"))
        defer { group.shutdown() }
        let tensor = Tensor([1, 2, 3])
        try group.allReduce(tensor, op: .avg)
        XCTAssertEqual(tensor.toDoubles(), [1, 2, 3])
        XCTAssertEqual(try group.allGather(tensor).toDoubles(), [1, 2, 3])
    }
}

import TandemTensor
