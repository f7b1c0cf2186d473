import TandemEngine
import XCTest

final class RestartPolicyTests: XCTestCase {
    /// The first restart of a streak is at once; then 1 s, doubling, capped at 30 s.
    func testBackOffDoublesUpToItsCap() {
        let policy = RestartPolicy(maxRestarts: 9)
        XCTAssertEqual((1...9).map { policy.delay(beforeAttempt: $0) }, [0, 1, 2, 4, 8, 16, 30, 30, 30])
        let quick = RestartPolicy(maxRestarts: 3, initialBackoffSeconds: 0.25, maxBackoffSeconds: 0.75)
        XCTAssertEqual((1...4).map { quick.delay(beforeAttempt: $0) }, [0, 0.25, 0.5, 0.75])
    }
}
