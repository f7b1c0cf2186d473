import CTandemAtomics

/// The shared memory of one group on one host: every member's segment, mapped, and the two ways ranks
/// synchronise through it.
///
/// **Exchange rounds** (collectives): in round t each rank writes its contribution into half t % 2 of its
/// own exchange area, stores the round's descriptor and then the stamp t with release ordering (`post`);
/// readers wait for the stamp with acquire ordering, check the descriptor against their own (so ranks that
/// disagree on the operation, sequence, dtype or size get `mismatch`, not mixed data), read what they need
/// straight from the peers' halves (`half(of:)`), and store `finished = t` (`finish`). Before rewriting a
/// half, its owner waits until every peer has finished the round that last used it (t − 2); that is the
/// only wait besides the data itself — no lock, no barrier per operation, and consecutive collectives
/// overlap across the two halves.
///
/// **Mailboxes** (point-to-point, and the transport-based algorithms): a ring of `slots` chunks per ordered
/// pair in the sender's segment, a `written` counter the sender bumps and a `consumed` counter the receiver
/// bumps; `ShmTransport` streams messages through them.
///
/// Used by one operation at a time (the group's executor serialises them).
final class ShmMemory: @unchecked Sendable {
    let rank: Int
    let worldSize: Int
    let layout: ShmLayout
    let wait: SpinWait
    /// Keeps the mappings alive.
    let pool: ShmPool
    /// Root ranks of the members, by rank in this group.
    let members: [Int]
    /// The pool region this group uses.
    let region: Int
    private let bases: [UnsafeMutableRawPointer]
    /// Exchange rounds this rank has finished; equal on every rank between operations.
    private var round: UInt64 = 0
    /// Mailbox chunks this rank has written to each peer, and taken from each peer.
    var written: [UInt64]
    var consumed: [UInt64]
    /// Scratch for reduce sources (one pointer per rank), reused by every operation.
    let sources: UnsafeMutableBufferPointer<UnsafeRawPointer>

    /// - Parameters:
    ///   - members: the root ranks of this group's members, by rank in this group.
    ///   - region: the pool region this group uses in every member's segment.
    init(rank: Int, layout: ShmLayout, pool: ShmPool, members: [Int], region: Int, wait: SpinWait) {
        precondition(members.count == layout.worldSize && layout.byteCount <= pool.regionBytes && region < pool.regionCount)
        self.rank = rank
        worldSize = layout.worldSize
        self.layout = layout
        self.wait = wait
        self.pool = pool
        self.members = members
        self.region = region
        bases = members.map { pool.base(of: $0, region: region) }
        written = Array(repeating: 0, count: layout.worldSize)
        consumed = Array(repeating: 0, count: layout.worldSize)
        sources = .allocate(capacity: layout.worldSize)
        sources.initialize(repeating: UnsafeRawPointer(bases[rank]))
    }

    deinit { sources.deallocate() }

    // MARK: - Exchange rounds

    /// Bytes each rank can contribute per round.
    var exchangeBytes: Int { layout.exchangeBytes }

    /// Bytes of each rank's sub-slot when a half is cut into one per rank (reduce-scatter, scatter), a
    /// multiple of 64.
    var subSlotBytes: Int { layout.exchangeBytes / worldSize / ShmLayout.line * ShmLayout.line }

    /// The round in progress (one past the last finished).
    private var current: UInt64 { round + 1 }

    /// Publishes this rank's contribution to the current round: waits until no peer still reads the half it
    /// is about to overwrite, lets `fill` write into it, then stores the descriptor and the stamp.
    func post(_ descriptor: WireHeader, _ context: OperationContext, fill: (UnsafeMutableRawPointer) -> Void) throws(CommError) {
        let t = current
        if t > 2 {
            for peer in 0..<worldSize where peer != rank {
                let finished = counter(peer, layout.finishedLine)
                try wait.until(context, silent: { [self] in silentPeers(below: t - 2, line: layout.finishedLine) }) {
                    tandem_load_acquire(finished) >= t - 2
                }
            }
        }
        let half = Int(t % 2)
        fill(bases[rank] + layout.exchange(half))
        let line = bases[rank] + layout.exchangeLine(half)
        descriptor.encode(into: line + 8)
        tandem_store_release(line.assumingMemoryBound(to: UInt64.self), t)
    }

    /// Waits until every rank in `peers` has posted the current round, and checks each one's descriptor.
    func await(_ peers: some Sequence<Int>, _ descriptor: WireHeader, _ context: OperationContext) throws(CommError) {
        let t = current
        let half = Int(t % 2)
        for peer in peers where peer != rank {
            let line = bases[peer] + layout.exchangeLine(half)
            let stamp = line.assumingMemoryBound(to: UInt64.self)
            try wait.until(context, silent: { [peer] }) { tandem_load_acquire(stamp) >= t }
            guard let posted = WireHeader.decode(from: line + 8), posted == descriptor else {
                let seen = WireHeader.decode(from: line + 8)?.summary ?? "an unreadable descriptor (corrupt shared memory)"
                throw .mismatch(group: context.group, peer: peer, expected: descriptor.summary, received: seen)
            }
        }
    }

    /// `peer`'s half of the current round (valid between `await` and `finish`).
    func half(of peer: Int) -> UnsafeMutableRawPointer {
        bases[peer] + layout.exchange(Int(current % 2))
    }

    /// Marks the current round read; its halves may be reused two rounds on.
    func finish() {
        round += 1
        tandem_store_release(counter(rank, layout.finishedLine), round)
    }

    /// Fills the reduce-source scratch with every rank's half of the current round, at `offset` bytes.
    func gatherSources(offset: Int) -> UnsafeBufferPointer<UnsafeRawPointer> {
        for peer in 0..<worldSize { sources[peer] = UnsafeRawPointer(half(of: peer) + offset) }
        return UnsafeBufferPointer(sources)
    }

    private func silentPeers(below value: UInt64, line: Int) -> [Int] {
        (0..<worldSize).filter { $0 != rank && tandem_load_acquire(counter($0, line)) < value }
    }

    // MARK: - Mailboxes

    /// The counter at `line` in `owner`'s segment.
    func counter(_ owner: Int, _ line: Int) -> UnsafeMutablePointer<UInt64> {
        (bases[owner] + line).assumingMemoryBound(to: UInt64.self)
    }

    /// Chunk `index` (taken modulo the ring size) of the mailbox from `owner` to `peer`.
    func chunk(from owner: Int, to peer: Int, index: UInt64) -> UnsafeMutableRawPointer {
        bases[owner] + layout.mailbox(peer, slot: Int(index % UInt64(layout.slots)))
    }
}
