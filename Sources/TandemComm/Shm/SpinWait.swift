#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CTandemAtomics

/// How a rank waits for a flag in shared memory that a peer will set.
///
/// Three phases: a few `pause` spins (a peer on another core answers within a microsecond), then spinning with
/// `sched_yield` so that, when ranks outnumber cores, the peer being waited for gets the CPU; after
/// `yieldNanoseconds` it sleeps in 1 ms `poll(2)`s on the group's alarm descriptor, so a long wait costs no CPU.
/// Every phase checks the group's failure flag (set by the liveness monitor when a peer dies), whether a
/// peer being waited for has shut its group down, and the operation's deadline, so no wait outlives any.
struct SpinWait {
    let health: GroupHealth
    /// The root-group rank of each rank of the group (the liveness monitor knows peers by those).
    let rootRanks: [Int]
    /// How long to keep spinning (with yields) before sleeping between checks.
    let yieldNanoseconds: UInt64

    /// Returns once `isReady()` holds.
    ///
    /// - Parameter silent: the peers that have not yet done their part, for the timeout error.
    /// - Throws: the group's failure, or `CommError.timeout` at the operation's deadline.
    @inline(__always)
    func until(_ context: OperationContext, silent: () -> [Int], _ isReady: () -> Bool) throws(CommError) {
        for _ in 0..<64 {
            if isReady() { return }
            tandem_spin_pause()
        }
        try slowly(context, silent: silent, isReady)
    }

    private func slowly(_ context: OperationContext, silent: () -> [Int], _ isReady: () -> Bool) throws(CommError) {
        let start = Deadline.monotonicNanoseconds()
        var turns = 0
        while !isReady() {
            turns += 1
            if turns % 16 != 0 {
                sched_yield()
                continue
            }
            if health.isBroken, let failure = health.error { throw failure }
            if let gone = silent().first(where: { health.hasDeparted(rootRanks[$0]) }) {
                throw .peerLost(
                    rank: gone, group: context.group,
                    detail: "rank \(gone) shut its process group down while this rank still expected data from it")
            }
            let now = Deadline.monotonicNanoseconds()
            if context.deadline.hasPassed {
                throw .timeout(
                    group: context.group, operation: context.operation.description, sequence: context.sequence,
                    waitingFor: silent(), seconds: context.timeoutSeconds)
            }
            if now - start > yieldNanoseconds {
                var entry = pollfd(fd: health.alarmDescriptor, events: Int16(POLLIN), revents: 0)
                _ = poll(&entry, 1, 1)
            } else {
                sched_yield()
            }
        }
    }
}
