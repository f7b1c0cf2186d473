/// Where everything lives inside one rank's shared-memory segment, for a group of `worldSize` ranks.
///
/// ```
/// control (64-byte lines, so no two writers share a cache line)
///   2 exchange lines        one per half: round stamp + the round's descriptor   (written by the owner)
///   1 finished line         the last exchange round the owner finished reading   (written by the owner)
///   worldSize written lines mailbox chunks the owner wrote for peer p            (written by the owner)
///   worldSize consumed lines mailbox chunks peer p took from the owner           (written by peer p)
/// exchange: 2 halves × exchangeBytes     the owner's contribution to the current round, double-buffered
/// mailboxes: worldSize × slots × slotBytes   a chunk ring per destination peer (the owner's own is unused)
/// ```
///
/// Every offset is a multiple of 64 and the segment is page aligned, so the exchange halves suit vector loads.
struct ShmLayout: Equatable, Sendable {
    static let line = 64

    let worldSize: Int
    /// Bytes in each half of the exchange area.
    let exchangeBytes: Int
    /// Bytes per mailbox chunk.
    let slotBytes: Int
    /// Chunks in flight per mailbox.
    let slots: Int

    init(worldSize: Int, exchangeBytes: Int, slotBytes: Int, slots: Int) {
        precondition(exchangeBytes > 0 && exchangeBytes % Self.line == 0, "exchange size must be a positive multiple of 64")
        precondition(slotBytes > WireHeader.byteCount && slotBytes % Self.line == 0, "slot size must be a multiple of 64 above a header")
        precondition(slots >= 1)
        self.worldSize = worldSize
        self.exchangeBytes = exchangeBytes
        self.slotBytes = slotBytes
        self.slots = slots
    }

    /// The exchange line of `half` (0 or 1).
    func exchangeLine(_ half: Int) -> Int { half * Self.line }
    var finishedLine: Int { 2 * Self.line }
    /// The owner's count of chunks written for `peer`.
    func writtenLine(_ peer: Int) -> Int { (3 + peer) * Self.line }
    /// `peer`'s count of chunks taken from the owner's mailbox for it.
    func consumedLine(_ peer: Int) -> Int { (3 + worldSize + peer) * Self.line }

    var controlBytes: Int { (3 + 2 * worldSize) * Self.line }

    /// Start of exchange half `half`.
    func exchange(_ half: Int) -> Int { controlBytes + half * exchangeBytes }

    /// Start of chunk `slot` of the mailbox for `peer`.
    func mailbox(_ peer: Int, slot: Int) -> Int {
        controlBytes + 2 * exchangeBytes + (peer * slots + slot) * slotBytes
    }

    /// The segment's size.
    var byteCount: Int { controlBytes + 2 * exchangeBytes + worldSize * slots * slotBytes }
}
