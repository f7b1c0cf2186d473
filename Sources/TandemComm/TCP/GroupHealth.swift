#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization

/// The broken-or-not state of one group, shared by its data plane and its liveness monitor.
///
/// The first failure wins and is kept; `alarmDescriptor` becomes readable at that moment and stays readable,
/// so a data-plane `poll(2)` that includes it wakes at once and every later poll returns immediately.
final class GroupHealth: Sendable {
    private let failure = Mutex<CommError?>(nil)
    /// Read end of a pipe that gets one byte when the group fails; never drained.
    let alarmDescriptor: Int32
    private let alarmWriteDescriptor: Int32

    init() throws(SystemCallError) {
        var ends: [Int32] = [0, 0]
        try Posix.call("pipe") { pipe(&ends) }
        for end in ends {
            _ = fcntl(end, F_SETFD, FD_CLOEXEC)
            _ = fcntl(end, F_SETFL, fcntl(end, F_GETFL) | O_NONBLOCK)
        }
        alarmDescriptor = ends[0]
        alarmWriteDescriptor = ends[1]
    }

    deinit {
        close(alarmDescriptor)
        close(alarmWriteDescriptor)
    }

    /// The recorded failure, if any.
    var error: CommError? { failure.withLock { $0 } }

    /// Throws the recorded failure, if any.
    func check() throws(CommError) {
        if let error { throw error }
    }

    /// Records `error` unless a failure is already recorded; returns whether this call recorded it.
    @discardableResult
    func fail(_ error: CommError) -> Bool {
        let recorded = failure.withLock { (current: inout CommError?) -> Bool in
            guard current == nil else { return false }
            current = error
            return true
        }
        if recorded {
            var byte: UInt8 = 1
            _ = write(alarmWriteDescriptor, &byte, 1)
        }
        return recorded
    }
}
