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
/// Every phase checks the group's failure flag (set by the liveness monitor when a peer dies), the caller's
/// reason to give up (a peer that shut its group down, a queue that was closed) and the deadline, so no wait
/// outlives any. Shared-memory collectives and the broadcast queue wait through it.
struct SpinWait {
    let health: GroupHealth
    /// The root-group rank of each rank of the group (the liveness monitor knows peers by those).
    let rootRanks: [Int]
    /// How long to keep spinning (with yields) before sleeping between checks.
    var yieldNanoseconds: UInt64 = 5_000_000

    /// How a `wait` ended.
    enum Outcome { case ready, timedOut, abandoned }

    /// Returns once `isReady()` holds.
    ///
    /// - Parameters:
    ///   - silent: the peers that have not yet done their part, for the timeout error.
    ///   - departureGrace: seconds to keep waiting after a silent peer shut its group down, for a library that
    ///     completes an operation on each rank separately (MPI: a peer may finish its part and leave before this
    ///     rank has seen the operation complete); 0 gives up at once.
    /// - Throws: the group's failure, `peerLost` when a silent peer shut its group down, or `CommError.timeout`
    ///   at the operation's deadline — unless `isReady()` holds once the failure or departure is seen (the peers
    ///   did their part before it).
    @inline(__always)
    func until(_ context: OperationContext, silent: () -> [Int], departureGrace: Double = 0, _ isReady: () -> Bool) throws(CommError) {
        let departed = { (peer: Int) in health.hasDeparted(rootRanks[peer]) }
        switch try wait(until: context.deadline, abandon: { silent().contains(where: departed) }, isReady) {
        case .ready:
            return
        case .abandoned:
            if departureGrace > 0, try wait(until: min(context.deadline, .after(seconds: departureGrace)), abandon: { false }, isReady) == .ready {
                return
            }
            throw .departed(silent().first(where: departed) ?? -1, group: context.group)
        case .timedOut:
            throw .timeout(
                group: context.group, operation: context.operation.description, sequence: context.sequence, waitingFor: silent(),
                seconds: context.timeoutSeconds)
        }
    }

    /// The waiting loop itself: `.ready` once `isReady()`, `.timedOut` when `deadline` passes, `.abandoned` as
    /// soon as `abandon()` (asked between yields, never on the fast path) says the wait is pointless.
    ///
    /// - Throws: the group's failure.
    @inline(__always)
    func wait(until deadline: Deadline, abandon: () -> Bool, _ isReady: () -> Bool) throws(CommError) -> Outcome {
        for _ in 0..<64 {
            if isReady() { return .ready }
            tandem_spin_pause()
        }
        return try slowly(until: deadline, abandon: abandon, isReady)
    }

    private func slowly(until deadline: Deadline, abandon: () -> Bool, _ isReady: () -> Bool) throws(CommError) -> Outcome {
        let start = Deadline.monotonicNanoseconds()
        var turns = 0
        while !isReady() {
            turns += 1
            if turns % 16 != 0 {
                sched_yield()
                continue
            }
            // A peer writes its part before it leaves (says goodbye, or dies after finishing this operation): what
            // it wrote between the readiness check above and its departure is visible now, so the operation is
            // complete, not failed; the group's next one fails.
            if health.isBroken, let failure = health.error {
                if isReady() { return .ready }
                throw failure
            }
            if abandon() { return isReady() ? .ready : .abandoned }
            if deadline.hasPassed { return .timedOut }
            if Deadline.monotonicNanoseconds() - start > yieldNanoseconds {
                var entry = pollfd(fd: health.alarmDescriptor, events: Int16(POLLIN), revents: 0)
                _ = poll(&entry, 1, 1)
            } else {
                sched_yield()
            }
        }
        return .ready
    }
}
