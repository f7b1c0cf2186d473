import TandemTensor

/// One collective in progress: the transport, the operation's identity (which goes into every header) and
/// the helpers its algorithm is written with.
///
/// Algorithms are written once against `transfer`; they see only raw element buffers. Every message header
/// carries `count` (the element count all ranks must agree on) so disagreement is caught on first contact.
struct Collective {
    /// Nil for a one-rank group, whose operations never move data.
    let transport: (any MessageTransport)?
    /// The group's shared memory when every member shares this host; the collectives then run as exchange
    /// rounds over it (`SharedMemory.swift`), and `transport` is its mailbox transport.
    let shared: ShmMemory?
    /// The intra-host and leader groups when the group spans hosts hierarchically; the reductions, gathers and
    /// broadcast then compose their operations (`Hierarchical.swift`).
    let hierarchy: Hierarchy?
    let rank: Int
    let worldSize: Int
    let context: OperationContext
    let dtype: DType
    let tag: Int32
    /// The element count all ranks must agree on (for point-to-point style messages, see `message`).
    let count: Int

    var elementBytes: Int { dtype.byteSize }

    /// The header of a message with `bytes` of payload; `count` overrides the agreed count for messages whose
    /// size is pairwise (all-to-all-v, send/recv).
    /// `sequence` overrides the operation's for point-to-point messages, which are numbered per peer.
    func header(bytes: Int, count overriding: Int? = nil, sequence: UInt64? = nil) -> WireHeader {
        WireHeader(
            group: context.groupIdentifier, operation: context.operation.rawValue, dtype: dtype.rawValue, tag: tag, sequence: sequence ?? context.sequence,
            count: UInt64(overriding ?? count), payloadBytes: UInt64(bytes))
    }

    func send(to peer: Int, _ payload: UnsafeRawPointer, bytes: Int, count: Int? = nil, sequence: UInt64? = nil) -> OutgoingMessage {
        OutgoingMessage(peer: peer, header: header(bytes: bytes, count: count, sequence: sequence), payload: payload, bytes: bytes)
    }

    func receive(
        from peer: Int, into destination: UnsafeMutableRawPointer, bytes: Int, count: Int? = nil, sequence: UInt64? = nil
    ) -> IncomingMessage {
        IncomingMessage(
            peer: peer, expected: header(bytes: bytes, count: count, sequence: sequence), destination: destination, bytes: bytes)
    }

    func transfer(_ sends: [OutgoingMessage], _ receives: [IncomingMessage]) throws(CommError) {
        if sends.isEmpty && receives.isEmpty { return }
        try transport!.transfer(sends: sends, receives: receives, context: context)
    }

    /// `value` modulo the world size, non-negative.
    func wrap(_ value: Int) -> Int {
        ((value % worldSize) + worldSize) % worldSize
    }
}

/// Splits `count` elements into `parts` contiguous ranges whose sizes differ by at most one.
func partition(_ count: Int, into parts: Int) -> [Range<Int>] {
    let base = count / parts
    let extra = count % parts
    var ranges: [Range<Int>] = []
    ranges.reserveCapacity(parts)
    var start = 0
    for part in 0..<parts {
        let size = base + (part < extra ? 1 : 0)
        ranges.append(start..<start + size)
        start += size
    }
    return ranges
}

/// Contiguous ranges from per-part sizes.
func ranges(fromSizes sizes: [Int]) -> [Range<Int>] {
    var start = 0
    return sizes.map { size in
        defer { start += size }
        return start..<start + size
    }
}

/// The `index`-th piece of `range` when cut into pieces of `pieceSize` elements (empty when past the end).
func piece(_ index: Int, of range: Range<Int>, size pieceSize: Int) -> Range<Int> {
    let start = range.lowerBound + index * pieceSize
    guard start < range.upperBound else { return start..<start }
    return start..<min(start + pieceSize, range.upperBound)
}

/// How many pieces of `pieceSize` cover `count` elements.
func pieceCount(_ count: Int, size pieceSize: Int) -> Int {
    (count + pieceSize - 1) / pieceSize
}
