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
    /// Set with the failure; a lock-free check for loops that spin on shared memory.
    private let broken = Atomic<Bool>(false)
    /// Peers that said goodbye (shut their group down cleanly).
    private let departed = Mutex<Set<Int>>([])
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

    /// Whether a failure is recorded; cheap enough to ask on every turn of a spin loop.
    var isBroken: Bool { broken.load(ordering: .acquiring) }

    /// Throws the recorded failure, if any.
    func check() throws(CommError) {
        if let error { throw error }
    }

    /// Records that `peer` shut its group down cleanly.
    func markDeparted(_ peer: Int) {
        departed.withLock { _ = $0.insert(peer) }
    }

    /// Whether `peer` said goodbye.
    func hasDeparted(_ peer: Int) -> Bool {
        departed.withLock { $0.contains(peer) }
    }

    /// Waits up to `seconds` for the liveness monitor to explain why `peer`'s data connection closed: the
    /// group's recorded failure (the peer's abort, or its death) or the peer's goodbye. A data connection can
    /// close a moment before the monitor has read the message that says why; this keeps the real cause.
    ///
    /// - Returns: the recorded failure, or nil when none was recorded in time (then check `hasDeparted`).
    func awaitCause(of peer: Int, seconds: Double) -> CommError? {
        let deadline = Deadline.after(seconds: seconds)
        var entry = pollfd(fd: alarmDescriptor, events: Int16(POLLIN), revents: 0)
        while error == nil && !hasDeparted(peer) && !deadline.hasPassed {
            _ = poll(&entry, 1, deadline.pollTimeout(cappedAt: 5))
        }
        return error
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
            broken.store(true, ordering: .releasing)
            var byte: UInt8 = 1
            _ = write(alarmWriteDescriptor, &byte, 1)
        }
        return recorded
    }
}
