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
            for index in sends.indices where sent[index] < WireHeader.byteCount + sends[index].bytes {
                // One message at a time per peer, in order.
                if sends[..<index].indices.contains(where: { sends[$0].peer == sends[index].peer && sent[$0] < WireHeader.byteCount + sends[$0].bytes }) {
                    continue
                }
                while sent[index] < WireHeader.byteCount + sends[index].bytes, pushChunk(sends[index], done: &sent[index]) {
                    progressed = true
                }
                if sent[index] == WireHeader.byteCount + sends[index].bytes { remaining -= 1 }
            }
            for index in receives.indices where received[index] < WireHeader.byteCount + receives[index].bytes {
                if receives[..<index].indices.contains(where: {
                    receives[$0].peer == receives[index].peer && received[$0] < WireHeader.byteCount + receives[$0].bytes
                }) {
                    continue
                }
                while received[index] < WireHeader.byteCount + receives[index].bytes {
                    guard try pullChunk(receives[index], done: &received[index], context: context) else { break }
                    progressed = true
                }
                if received[index] == WireHeader.byteCount + receives[index].bytes { remaining -= 1 }
            }
            if remaining == 0 || progressed { continue }
            try memory.wait.until(context, silent: { Self.silent(sends, sent, receives, received) }) {
                canProgress(sends, sent, receives, received)
            }
        }
    }

    /// Copies the next chunk of `message` into a free slot; false when the ring to its peer is full.
    private func pushChunk(_ message: OutgoingMessage, done: inout Int) -> Bool {
        let peer = message.peer
        let index = memory.written[peer]
        let taken = tandem_load_acquire(memory.counter(memory.rank, memory.layout.consumedLine(peer)))
        guard index - taken < UInt64(memory.layout.slots) else { return false }
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
        let index = memory.consumed[peer]
        guard tandem_load_acquire(memory.counter(peer, memory.layout.writtenLine(memory.rank))) > index else { return false }
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
        for (index, message) in sends.enumerated() where sent[index] < WireHeader.byteCount + message.bytes {
            let taken = tandem_load_acquire(memory.counter(memory.rank, memory.layout.consumedLine(message.peer)))
            if memory.written[message.peer] - taken < UInt64(memory.layout.slots) { return true }
        }
        for (index, message) in receives.enumerated() where received[index] < WireHeader.byteCount + message.bytes {
            if tandem_load_acquire(memory.counter(message.peer, memory.layout.writtenLine(memory.rank))) > memory.consumed[message.peer] {
                return true
            }
        }
        return false
    }

    private static func silent(_ sends: [OutgoingMessage], _ sent: [Int], _ receives: [IncomingMessage], _ received: [Int]) -> [Int] {
        var peers = Set<Int>()
        for (index, message) in sends.enumerated() where sent[index] < WireHeader.byteCount + message.bytes { peers.insert(message.peer) }
        for (index, message) in receives.enumerated() where received[index] < WireHeader.byteCount + message.bytes {
            peers.insert(message.peer)
        }
        return peers.sorted()
    }
}
