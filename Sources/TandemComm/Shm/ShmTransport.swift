import CTandemAtomics

/// `MessageTransport` over shared-memory mailboxes: the point-to-point path of a group whose ranks share a
/// host, and the transport every `Algorithms/` algorithm runs on there.
///
/// A message is the 40-byte header followed by its payload, streamed as one byte sequence through the
/// sender's ring of chunks for the receiver: the sender copies the next chunk into a free slot and bumps
/// `written` (release); the receiver waits for it (acquire), copies it out, checks the header in the first
/// chunk before trusting any payload, and bumps `consumed` so the slot can be reused. Every message starts on
/// a fresh chunk. Messages to or from one peer go in the order given; all peers progress together.
final class ShmTransport: MessageTransport, @unchecked Sendable {
    /// Bytes per mailbox chunk, and chunks in flight per ordered pair of ranks.
    static let slotBytes = 64 << 10
    static let slots = 4

    private let memory: ShmMemory

    init(memory: ShmMemory) {
        self.memory = memory
    }

    func transfer(sends: [OutgoingMessage], receives: [IncomingMessage], context: OperationContext) throws(CommError) {
        // Bytes moved so far per message, the 40 header bytes included.
        var sent = [Int](repeating: 0, count: sends.count)
        var received = [Int](repeating: 0, count: receives.count)
        var remaining = sends.count + receives.count
        while remaining > 0 {
            var progressed = false
            for index in sends.indices where sent[index] < Self.total(sends[index])
                && Self.isNext(index, peer: { sends[$0].peer }, unfinished: { sent[$0] < Self.total(sends[$0]) })
            {
                while sent[index] < Self.total(sends[index]), pushChunk(sends[index], done: &sent[index]) { progressed = true }
                if sent[index] == Self.total(sends[index]) { remaining -= 1 }
            }
            for index in receives.indices where received[index] < Self.total(receives[index])
                && Self.isNext(index, peer: { receives[$0].peer }, unfinished: { received[$0] < Self.total(receives[$0]) })
            {
                while received[index] < Self.total(receives[index]),
                    try pullChunk(receives[index], done: &received[index], context: context)
                {
                    progressed = true
                }
                if received[index] == Self.total(receives[index]) { remaining -= 1 }
            }
            if remaining == 0 || progressed { continue }
            try memory.wait.until(context, silent: { Self.silent(sends, sent, receives, received) }) {
                canProgress(sends, sent, receives, received)
            }
        }
    }

    /// Header and payload bytes of a message.
    private static func total(_ message: OutgoingMessage) -> Int { WireHeader.byteCount + message.bytes }
    private static func total(_ message: IncomingMessage) -> Int { WireHeader.byteCount + message.bytes }

    /// Whether message `index` is the first unfinished one with its peer: a peer's messages go in order.
    private static func isNext(_ index: Int, peer: (Int) -> Int, unfinished: (Int) -> Bool) -> Bool {
        !(0..<index).contains { peer($0) == peer(index) && unfinished($0) }
    }

    /// Whether the ring to `peer` has a free slot.
    private func hasRoom(to peer: Int) -> Bool {
        memory.written[peer] - tandem_load_acquire(memory.counter(memory.rank, memory.layout.consumedLine(peer))) < UInt64(memory.layout.slots)
    }

    func hasIncoming(from peer: Int) -> Bool { hasChunk(from: peer) }

    /// Whether `peer` has written a chunk this rank has not taken.
    private func hasChunk(from peer: Int) -> Bool {
        tandem_load_acquire(memory.counter(peer, memory.layout.writtenLine(memory.rank))) > memory.consumed[peer]
    }

    /// Copies the next chunk of `message` into a free slot; false when the ring to its peer is full.
    private func pushChunk(_ message: OutgoingMessage, done: inout Int) -> Bool {
        let peer = message.peer
        guard hasRoom(to: peer) else { return false }
        let index = memory.written[peer]
        let slot = memory.chunk(from: memory.rank, to: peer, index: index)
        var filled = 0
        if done == 0 {
            message.header.encode(into: slot)
            filled = WireHeader.byteCount
            done = WireHeader.byteCount
        }
        let payloadOffset = done - WireHeader.byteCount
        let length = min(memory.layout.slotBytes - filled, message.bytes - payloadOffset)
        if length > 0 { (slot + filled).copyMemory(from: message.payload! + payloadOffset, byteCount: length) }
        done += length
        memory.written[peer] = index + 1
        tandem_store_release(memory.counter(memory.rank, memory.layout.writtenLine(peer)), index + 1)
        return true
    }

    /// Copies the next chunk from `message`'s peer; false when none is there yet.
    private func pullChunk(_ message: IncomingMessage, done: inout Int, context: OperationContext) throws(CommError) -> Bool {
        let peer = message.peer
        guard hasChunk(from: peer) else { return false }
        let index = memory.consumed[peer]
        let slot = memory.chunk(from: peer, to: memory.rank, index: index)
        var taken = 0
        if done == 0 {
            guard let header = WireHeader.decode(from: slot) else {
                throw .mismatch(
                    group: context.group, peer: peer, expected: message.expected.summary,
                    received: "bytes that are not a Tandem message header (corrupt shared memory)")
            }
            guard header == message.expected else {
                throw .mismatch(group: context.group, peer: peer, expected: message.expected.summary, received: header.summary)
            }
            taken = WireHeader.byteCount
            done = WireHeader.byteCount
        }
        let payloadOffset = done - WireHeader.byteCount
        let length = min(memory.layout.slotBytes - taken, message.bytes - payloadOffset)
        if length > 0 { (message.destination! + payloadOffset).copyMemory(from: slot + taken, byteCount: length) }
        done += length
        memory.consumed[peer] = index + 1
        tandem_store_release(memory.counter(peer, memory.layout.consumedLine(memory.rank)), index + 1)
        return true
    }

    /// Whether any unfinished message could move a chunk now.
    private func canProgress(_ sends: [OutgoingMessage], _ sent: [Int], _ receives: [IncomingMessage], _ received: [Int]) -> Bool {
        sends.indices.contains { sent[$0] < Self.total(sends[$0]) && hasRoom(to: sends[$0].peer) }
            || receives.indices.contains { received[$0] < Self.total(receives[$0]) && hasChunk(from: receives[$0].peer) }
    }

    /// The peers of the unfinished messages, for the timeout error.
    private static func silent(_ sends: [OutgoingMessage], _ sent: [Int], _ receives: [IncomingMessage], _ received: [Int]) -> [Int] {
        let sending = sends.indices.filter { sent[$0] < total(sends[$0]) }.map { sends[$0].peer }
        let receiving = receives.indices.filter { received[$0] < total(receives[$0]) }.map { receives[$0].peer }
        return Set(sending + receiving).sorted()
    }
}
