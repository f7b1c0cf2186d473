import TandemTensor

/// One collective in progress: the backend that moves it, the operation's identity (which goes into every
/// header) and the helpers the message-passing algorithms are written with.
///
/// The group's core builds one per operation and calls the operation below, which hands it to the backend
/// (`CommBackend`); the message-passing algorithms (`Algorithms/`) see only raw element buffers and `transfer`.
/// Every message header carries `count` (the element count all ranks must agree on) so disagreement is caught
/// on first contact.
struct Collective {
    /// Nil for a one-rank group, whose operations never move data.
    let backend: (any CommBackend)?
    let rank: Int
    let worldSize: Int
    let context: OperationContext
    let dtype: DType
    let tag: Int32
    /// The element count all ranks must agree on (for point-to-point style messages, see `message`).
    var count: Int

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

    /// Moves `sends` and `receives` over the backend's transport, all at once.
    func transfer(_ sends: [OutgoingMessage], _ receives: [IncomingMessage]) throws(CommError) {
        if sends.isEmpty && receives.isEmpty { return }
        try backend!.transport.transfer(sends: sends, receives: receives, context: context)
    }

    // MARK: operations, as the core calls them (`op` is never `avg`)

    /// Reduces `count` elements of `buffer` across all ranks in place.
    func allReduce(_ buffer: UnsafeMutableRawPointer, op: ReduceOp) throws(CommError) {
        guard let backend, worldSize > 1 else { return }
        try backend.allReduce(buffer, op: op, self)
    }

    /// Rank r gets element block r of `source`, reduced over all ranks, in `output`.
    func reduceScatter(_ source: UnsafeMutableRawPointer, blocks: [Range<Int>], op: ReduceOp, into output: UnsafeMutableRawPointer) throws(CommError) {
        guard let backend, worldSize > 1 else {
            output.copyMemory(from: source + (blocks.first?.lowerBound ?? 0) * elementBytes, byteCount: (blocks.first?.count ?? 0) * elementBytes)
            return
        }
        try backend.reduceScatter(source, blocks: blocks, op: op, into: output, self)
    }

    /// Gathers every rank's byte block into `output` (`input` may already be in place there).
    func allGather(_ input: UnsafeRawPointer, into output: UnsafeMutableRawPointer, blocks: [Range<Int>]) throws(CommError) {
        guard let backend, worldSize > 1 else {
            let own = blocks[rank]
            if input != UnsafeRawPointer(output + own.lowerBound) { (output + own.lowerBound).copyMemory(from: input, byteCount: own.count) }
            return
        }
        try backend.allGather(input, into: output, blocks: blocks, self)
    }

    /// Copies `bytes` of `buffer` from `root` to every rank.
    func broadcast(_ buffer: UnsafeMutableRawPointer, bytes: Int, root: Int) throws(CommError) {
        guard let backend, worldSize > 1 else { return }
        try backend.broadcast(buffer, bytes: bytes, root: root, self)
    }

    /// Collects every rank's `blockBytes` into `output` at `root`, in rank order.
    func gather(_ input: UnsafeRawPointer, blockBytes: Int, into output: UnsafeMutableRawPointer?, root: Int) throws(CommError) {
        guard let backend, worldSize > 1 else {
            output!.copyMemory(from: input, byteCount: blockBytes)
            return
        }
        try backend.gather(input, blockBytes: blockBytes, into: output, root: root, self)
    }

    /// Gives rank p block p of `input` (at `root`).
    func scatter(_ input: UnsafeRawPointer?, blockBytes: Int, into output: UnsafeMutableRawPointer, root: Int) throws(CommError) {
        guard let backend, worldSize > 1 else {
            output.copyMemory(from: input!, byteCount: blockBytes)
            return
        }
        try backend.scatter(input, blockBytes: blockBytes, into: output, root: root, self)
    }

    /// All-to-all with per-peer byte ranges.
    func allToAll(
        _ input: UnsafeRawPointer, sendBlocks: [Range<Int>], into output: UnsafeMutableRawPointer, receiveBlocks: [Range<Int>]
    ) throws(CommError) {
        guard let backend, worldSize > 1 else {
            (output + receiveBlocks[rank].lowerBound).copyMemory(from: input + sendBlocks[rank].lowerBound, byteCount: sendBlocks[rank].count)
            return
        }
        try backend.allToAll(input, sendBlocks: sendBlocks, into: output, receiveBlocks: receiveBlocks, self)
    }

    /// Returns once every rank has entered.
    func barrier() throws(CommError) {
        guard let backend, worldSize > 1 else { return }
        try backend.barrier(self)
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
