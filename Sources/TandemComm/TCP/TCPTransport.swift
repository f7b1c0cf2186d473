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
///
/// With several data connections to a peer (`TANDEM_SOCKETS_PER_PEER`), a message of `stripeThreshold` bytes or
/// more is split into as many equal stripes, stripe k on connection k, the header first on connection 0; smaller
/// ones travel on connection 0. Both ends split by the message's size, which they agree on (a disagreement is a
/// header mismatch on connection 0), and each connection is in order, so stripes need no header of their own.
final class TCPTransport: MessageTransport, @unchecked Sendable {
    let rank: Int
    let worldSize: Int
    private let group: String
    /// Data connections by peer rank, one or more each (none at this rank's own index); split sub-groups carve
    /// theirs from these.
    let sockets: [[Socket]]
    private let health: GroupHealth
    /// The root-group rank of each peer: the liveness monitor, shared by split sub-groups, knows peers by those.
    private let rootRanks: [Int]
    /// How long to busy-poll before sleeping in `poll(2)`.
    private let spinNanoseconds: UInt64
    private var headerArea: UnsafeMutableRawPointer
    private var headerSlots: Int
    /// The pieces of the last transfer, kept for their capacity (a group runs one transfer at a time).
    private var spareOutgoing: [Piece] = []
    private var spareIncoming: [Piece] = []

    /// The smallest message split over a peer's data connections; below it one stream's throughput is not
    /// what bounds the time.
    static let stripeThreshold = 256 << 10

    init(group: String, rank: Int, worldSize: Int, sockets: [[Socket]], rootRanks: [Int], health: GroupHealth, spinNanoseconds: UInt64) {
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
        for socket in sockets.joined() { socket.shutdownBoth() }
    }

    /// The piece of one message that travels on one connection: the header (on the first piece only) and
    /// `bytes` of payload from `offset`.
    private struct Piece {
        var message: Int
        var peer: Int
        var descriptor: Int32
        var headerBytes: Int
        var offset: Int
        var bytes: Int
        /// Bytes moved so far, the header's included.
        var done = 0
        var total: Int { headerBytes + bytes }
    }

    private func pieces(of message: Int, peer: Int, bytes: Int, into pieces: inout [Piece]) {
        let connections = sockets[peer]
        precondition(peer != rank && !connections.isEmpty, "transfer to self or unknown peer")
        let stripes = bytes >= Self.stripeThreshold ? connections.count : 1
        for stripe in 0..<stripes {
            let offset = bytes * stripe / stripes
            pieces.append(
                Piece(
                    message: message, peer: peer, descriptor: connections[stripe].descriptor, headerBytes: stripe == 0 ? WireHeader.byteCount : 0,
                    offset: offset, bytes: bytes * (stripe + 1) / stripes - offset))
        }
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
        var outgoing = spareOutgoing
        var incoming = spareIncoming
        (spareOutgoing, spareIncoming) = ([], [])
        outgoing.removeAll(keepingCapacity: true)
        incoming.removeAll(keepingCapacity: true)
        defer { (spareOutgoing, spareIncoming) = (outgoing, incoming) }
        for (index, message) in sends.enumerated() {
            message.header.encode(into: headerSlot(index))
            pieces(of: index, peer: message.peer, bytes: message.bytes, into: &outgoing)
        }
        for (index, message) in receives.enumerated() { pieces(of: index, peer: message.peer, bytes: message.bytes, into: &incoming) }
        var remaining = outgoing.count + incoming.count
        var idleSince: UInt64 = 0
        while true {
            var progressed = false
            for index in outgoing.indices where outgoing[index].done < outgoing[index].total {
                let piece = outgoing[index]
                let moved = try sendSome(piece, sends[piece.message], headerSlot(piece.message), alreadySent: piece.done)
                if moved > 0 {
                    outgoing[index].done += moved
                    progressed = true
                    if outgoing[index].done == piece.total { remaining -= 1 }
                }
            }
            for index in incoming.indices where incoming[index].done < incoming[index].total {
                let piece = incoming[index]
                let slot = headerSlot(sends.count + piece.message)
                let moved = try receiveSome(piece, receives[piece.message], slot, alreadyReceived: piece.done)
                guard moved > 0 else { continue }
                incoming[index].done += moved
                progressed = true
                if piece.headerBytes > 0 && piece.done < WireHeader.byteCount && incoming[index].done >= WireHeader.byteCount {
                    try verifyHeader(slot, against: receives[piece.message], context: context)
                }
                if incoming[index].done == piece.total { remaining -= 1 }
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
            try sleepUntilReady(outgoing, incoming, context: context)
            idleSince = 0
        }
    }

    func hasIncoming(from peer: Int) -> Bool {
        // Every message starts on the first connection.
        guard let socket = sockets[peer].first else { return false }
        var entry = pollfd(fd: socket.descriptor, events: Int16(POLLIN), revents: 0)
        return ((try? Posix.poll(&entry, timeout: 0)) ?? 0) > 0
    }

    @inline(__always)
    private func headerSlot(_ index: Int) -> UnsafeMutableRawPointer {
        headerArea + index * WireHeader.byteCount
    }

    private func sendSome(_ piece: Piece, _ message: OutgoingMessage, _ header: UnsafeMutableRawPointer, alreadySent: Int) throws(CommError) -> Int {
        var vectors = (iovec(), iovec())
        var count: Int32 = 0
        let payload = UnsafeMutableRawPointer(mutating: message.payload).map { $0 + piece.offset }
        if alreadySent < piece.headerBytes {
            vectors.0 = iovec(iov_base: header + alreadySent, iov_len: piece.headerBytes - alreadySent)
            vectors.1 = iovec(iov_base: payload, iov_len: piece.bytes)
            count = piece.bytes > 0 ? 2 : 1
        } else {
            let offset = alreadySent - piece.headerBytes
            vectors.0 = iovec(iov_base: payload! + offset, iov_len: piece.bytes - offset)
            count = 1
        }
        let descriptor = piece.descriptor
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
            throw connectionFailure(peer: piece.peer, detail: "send failed: \(error)")
        }
    }

    private func receiveSome(
        _ piece: Piece, _ message: IncomingMessage, _ header: UnsafeMutableRawPointer, alreadyReceived: Int
    ) throws(CommError) -> Int {
        var vectors = (iovec(), iovec())
        var count: Int32
        let destination = message.destination.map { $0 + piece.offset }
        if alreadyReceived < piece.headerBytes {
            vectors.0 = iovec(iov_base: header + alreadyReceived, iov_len: piece.headerBytes - alreadyReceived)
            vectors.1 = iovec(iov_base: destination, iov_len: piece.bytes)
            count = piece.bytes > 0 ? 2 : 1
        } else {
            let offset = alreadyReceived - piece.headerBytes
            vectors.0 = iovec(iov_base: destination! + offset, iov_len: piece.bytes - offset)
            count = 1
        }
        let descriptor = piece.descriptor
        let result: Int?
        do {
            result = try Posix.transfer("readv") {
                withUnsafeMutablePointer(to: &vectors) { pointer in
                    pointer.withMemoryRebound(to: iovec.self, capacity: 2) { readv(descriptor, $0, count) }
                }
            }
        } catch {
            throw connectionFailure(peer: piece.peer, detail: "receive failed: \(error)")
        }
        guard let result else { return 0 }
        if result == 0 {
            throw connectionFailure(peer: piece.peer, detail: "its connection closed: the process exited, was killed, or shut the group down")
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
        _ outgoing: [Piece], _ incoming: [Piece], context: OperationContext
    ) throws(CommError) {
        var entries = [pollfd(fd: health.alarmDescriptor, events: Int16(POLLIN), revents: 0)]
        for piece in outgoing where piece.done < piece.total {
            entries.append(pollfd(fd: piece.descriptor, events: Int16(POLLOUT), revents: 0))
        }
        for piece in incoming where piece.done < piece.total {
            entries.append(pollfd(fd: piece.descriptor, events: Int16(POLLIN), revents: 0))
        }
        let ready: Int
        do {
            ready = try Posix.poll(&entries) { context.deadline.pollTimeout() }
        } catch {
            throw health.error ?? .bootstrap(group: context.group, detail: "\(error)")
        }
        if ready == 0 {
            var silent = Set<Int>()
            for piece in incoming + outgoing where piece.done < piece.total { silent.insert(piece.peer) }
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
