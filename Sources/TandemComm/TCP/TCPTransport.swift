#if canImport(Glibc)
import Glibc
private let noSignal = Int32(MSG_NOSIGNAL)
#elseif canImport(Darwin)
import Darwin
private let noSignal: Int32 = 0
#endif

/// The data plane over TCP: moves any set of messages to and from peers at once.
///
/// `transfer` progresses all its sends and receives together on non-blocking sockets, so both directions of
/// every link carry data at the same time and no pair of ranks can deadlock on full socket buffers. When no
/// message can progress it spins briefly (small messages on a fast link arrive within microseconds), then
/// sleeps in `poll(2)` on the sockets plus the group's alarm descriptor, bounded by the operation's deadline.
/// Every received header is checked against what this rank expects before the operation completes.
final class TCPTransport: MessageTransport, @unchecked Sendable {
    let rank: Int
    let worldSize: Int
    private let group: String
    /// Data connections by peer rank (nil at this rank's own index); split sub-groups carve theirs from these.
    let sockets: [Socket?]
    private let health: GroupHealth
    /// The root-group rank of each peer: the liveness monitor, shared by split sub-groups, knows peers by those.
    private let rootRanks: [Int]
    /// How long to busy-poll before sleeping in `poll(2)`.
    private let spinNanoseconds: UInt64
    private var headerArea: UnsafeMutableRawPointer
    private var headerSlots: Int

    init(group: String, rank: Int, worldSize: Int, sockets: [Socket?], rootRanks: [Int], health: GroupHealth, spinNanoseconds: UInt64) {
        self.rootRanks = rootRanks
        self.group = group
        self.rank = rank
        self.worldSize = worldSize
        self.sockets = sockets
        self.health = health
        self.spinNanoseconds = spinNanoseconds
        headerSlots = max(4 * worldSize, 8)
        headerArea = .allocate(byteCount: headerSlots * WireHeader.byteCount, alignment: 64)
    }

    deinit { headerArea.deallocate() }

    /// Shuts down every data connection so that peers blocked on them see EOF.
    func shutdownConnections() {
        for socket in sockets.compactMap({ $0 }) { socket.shutdownBoth() }
    }

    /// Sends and receives all messages, returning when every one is complete.
    ///
    /// - Throws: `CommError.timeout` at the deadline, `.peerLost` on a closed connection, `.mismatch` when a
    ///   header differs from the expected one, or the group's recorded failure when it breaks meanwhile.
    func transfer(sends: [OutgoingMessage], receives: [IncomingMessage], context: OperationContext) throws(CommError) {
        let total = sends.count + receives.count
        if total == 0 { return }
        if total > headerSlots {
            headerArea.deallocate()
            headerSlots = total
            headerArea = .allocate(byteCount: total * WireHeader.byteCount, alignment: 64)
        }
        // Progress counters include the 40 header bytes.
        var sent = [Int](repeating: 0, count: sends.count)
        var received = [Int](repeating: 0, count: receives.count)
        for (index, message) in sends.enumerated() {
            precondition(message.peer != rank && sockets[message.peer] != nil, "send to self or unknown peer")
            message.header.encode(into: headerSlot(index))
        }
        var remaining = total
        var idleSince: UInt64 = 0
        while true {
            var progressed = false
            for index in sends.indices where sent[index] < WireHeader.byteCount + sends[index].bytes {
                let moved = try sendSome(sends[index], headerSlot(index), alreadySent: sent[index], context: context)
                if moved > 0 {
                    sent[index] += moved
                    progressed = true
                    if sent[index] == WireHeader.byteCount + sends[index].bytes { remaining -= 1 }
                }
            }
            for index in receives.indices where received[index] < WireHeader.byteCount + receives[index].bytes {
                let slot = headerSlot(sends.count + index)
                let before = received[index]
                let moved = try receiveSome(receives[index], slot, alreadyReceived: before, context: context)
                guard moved > 0 else { continue }
                received[index] += moved
                progressed = true
                if before < WireHeader.byteCount && received[index] >= WireHeader.byteCount {
                    try verifyHeader(slot, against: receives[index], context: context)
                }
                if received[index] == WireHeader.byteCount + receives[index].bytes { remaining -= 1 }
            }
            if remaining == 0 { return }
            if progressed {
                idleSince = 0
                continue
            }
            let now = Deadline.monotonicNanoseconds()
            if idleSince == 0 { idleSince = now }
            if now - idleSince < spinNanoseconds {
                // Yielding keeps the spin cheap when ranks outnumber cores: the peer we wait for gets the CPU.
                sched_yield()
                continue
            }
            try sleepUntilReady(sends, sent, receives, received, context: context)
            idleSince = 0
        }
    }

    func hasIncoming(from peer: Int) -> Bool {
        guard let socket = sockets[peer] else { return false }
        var entries = [pollfd(fd: socket.descriptor, events: Int16(POLLIN), revents: 0)]
        return ((try? Posix.poll(&entries) { 0 }) ?? 0) > 0
    }

    @inline(__always)
    private func headerSlot(_ index: Int) -> UnsafeMutableRawPointer {
        headerArea + index * WireHeader.byteCount
    }

    private func sendSome(
        _ message: OutgoingMessage, _ header: UnsafeMutableRawPointer, alreadySent: Int, context: OperationContext
    ) throws(CommError) -> Int {
        var vectors = (iovec(), iovec())
        var count: Int32 = 0
        if alreadySent < WireHeader.byteCount {
            vectors.0 = iovec(iov_base: header + alreadySent, iov_len: WireHeader.byteCount - alreadySent)
            vectors.1 = iovec(iov_base: UnsafeMutableRawPointer(mutating: message.payload), iov_len: message.bytes)
            count = message.bytes > 0 ? 2 : 1
        } else {
            let offset = alreadySent - WireHeader.byteCount
            vectors.0 = iovec(iov_base: UnsafeMutableRawPointer(mutating: message.payload! + offset), iov_len: message.bytes - offset)
            count = 1
        }
        let descriptor = sockets[message.peer]!.descriptor
        do {
            return try Posix.transfer("sendmsg") {
                withUnsafeMutablePointer(to: &vectors) { pointer in
                    pointer.withMemoryRebound(to: iovec.self, capacity: 2) { iov in
                        var header = msghdr()
                        header.msg_iov = iov
                        header.msg_iovlen = numericCast(count)
                        return sendmsg(descriptor, &header, noSignal | Int32(MSG_DONTWAIT))
                    }
                }
            } ?? 0
        } catch {
            throw connectionFailure(peer: message.peer, detail: "send failed: \(error)")
        }
    }

    private func receiveSome(
        _ message: IncomingMessage, _ header: UnsafeMutableRawPointer, alreadyReceived: Int, context: OperationContext
    ) throws(CommError) -> Int {
        var vectors = (iovec(), iovec())
        var count: Int32
        if alreadyReceived < WireHeader.byteCount {
            vectors.0 = iovec(iov_base: header + alreadyReceived, iov_len: WireHeader.byteCount - alreadyReceived)
            vectors.1 = iovec(iov_base: message.destination, iov_len: message.bytes)
            count = message.bytes > 0 ? 2 : 1
        } else {
            let offset = alreadyReceived - WireHeader.byteCount
            vectors.0 = iovec(iov_base: message.destination! + offset, iov_len: message.bytes - offset)
            count = 1
        }
        let descriptor = sockets[message.peer]!.descriptor
        let result: Int?
        do {
            result = try Posix.transfer("readv") {
                withUnsafeMutablePointer(to: &vectors) { pointer in
                    pointer.withMemoryRebound(to: iovec.self, capacity: 2) { readv(descriptor, $0, count) }
                }
            }
        } catch {
            throw connectionFailure(peer: message.peer, detail: "receive failed: \(error)")
        }
        guard let result else { return 0 }
        if result == 0 {
            throw connectionFailure(peer: message.peer, detail: "its connection closed: the process exited, was killed, or shut the group down")
        }
        return result
    }

    /// A broken connection. When the liveness monitor knows why (the peer aborted, died, or shut down cleanly),
    /// that cause wins: a peer that aborts and then exits closes its data connection right after sending the
    /// abort, and this rank may see the close first.
    private func connectionFailure(peer: Int, detail: String) -> CommError {
        if let cause = health.awaitCause(of: rootRanks[peer], seconds: 0.25) { return cause }
        if health.hasDeparted(rootRanks[peer]) {
            return .departed(peer, group: group)
        }
        return .peerLost(rank: peer, group: group, detail: detail)
    }

    private func verifyHeader(_ slot: UnsafeMutableRawPointer, against message: IncomingMessage, context: OperationContext) throws(CommError) {
        guard let actual = WireHeader.decode(from: slot) else {
            throw .mismatch(
                group: context.group, peer: message.peer, expected: message.expected.summary,
                received: "bytes that are not a Tandem message header (corrupt stream)")
        }
        if actual != message.expected {
            throw .mismatch(group: context.group, peer: message.peer, expected: message.expected.summary, received: actual.summary)
        }
    }

    private func sleepUntilReady(
        _ sends: [OutgoingMessage], _ sent: [Int], _ receives: [IncomingMessage], _ received: [Int],
        context: OperationContext
    ) throws(CommError) {
        var entries = [pollfd(fd: health.alarmDescriptor, events: Int16(POLLIN), revents: 0)]
        for (index, message) in sends.enumerated() where sent[index] < WireHeader.byteCount + message.bytes {
            entries.append(pollfd(fd: sockets[message.peer]!.descriptor, events: Int16(POLLOUT), revents: 0))
        }
        for (index, message) in receives.enumerated() where received[index] < WireHeader.byteCount + message.bytes {
            entries.append(pollfd(fd: sockets[message.peer]!.descriptor, events: Int16(POLLIN), revents: 0))
        }
        let ready: Int
        do {
            ready = try Posix.poll(&entries) { context.deadline.pollTimeout() }
        } catch {
            throw health.error ?? .bootstrap(group: context.group, detail: "\(error)")
        }
        if ready == 0 {
            var silent = Set<Int>()
            for (index, message) in receives.enumerated() where received[index] < WireHeader.byteCount + message.bytes {
                silent.insert(message.peer)
            }
            for (index, message) in sends.enumerated() where sent[index] < WireHeader.byteCount + message.bytes {
                silent.insert(message.peer)
            }
            throw .timeout(
                group: context.group, operation: context.operation.description, sequence: context.sequence,
                waitingFor: silent.sorted(), seconds: context.timeoutSeconds)
        }
        // Data that is already here still counts: the group's failure stops this transfer only when none of
        // its connections can progress.
        let connectionsReady = entries.dropFirst().contains { $0.revents != 0 }
        if entries[0].revents != 0 && !connectionsReady, let failure = health.error { throw failure }
    }
}
