import TandemTensor

/// How all-reduce runs over shared memory.
public enum SharedAllReduceAlgorithm: String, Sendable, CaseIterable {
    /// Every rank posts its buffer and reduces all ranks' posts in rank order: one synchronisation, n reads
    /// per element; best for small messages and few ranks.
    case oneShot = "one_shot"
    /// Rank r reduces the r-th slice of every post, posts the result, and every rank copies all result
    /// slices: two synchronisations, each element reduced once; best for large messages or many ranks.
    case twoShot = "two_shot"

    /// One-shot up to this many bytes (measured: docs/PERFORMANCE.md).
    public static let oneShotLimitBytes = 512 << 10

    /// The choice for `bytes` among `worldSize` ranks.
    static func choose(bytes: Int, worldSize: Int) -> SharedAllReduceAlgorithm {
        worldSize <= 2 || bytes <= oneShotLimitBytes ? .oneShot : .twoShot
    }
}

/// The size of the largest of `blocks` (a plain loop: a key-path `map` costs more than a small collective).
private func largest(_ blocks: [Range<Int>]) -> Int {
    var result = 0
    for block in blocks where block.count > result { result = block.count }
    return result
}

/// Collectives over a group's shared memory (`ShmMemory`'s exchange rounds): every rank posts into its own
/// half and reads the peers' halves directly, so data is copied once in and once out, whatever the world size.
/// Messages larger than a half stream through in as many rounds as the largest contribution needs; every
/// rank computes that number from sizes all ranks agree on. Each round's descriptor is this operation's header,
/// so ranks that disagree are stopped at the first round.
extension Collective {
    private var descriptor: WireHeader { header(bytes: 0) }

    /// All-reduce of `count` elements of `buffer`, in place; every rank reduces in rank order, so all ranks
    /// get the same bits.
    func sharedAllReduce(_ buffer: UnsafeMutableRawPointer, op: ReduceOp, memory: ShmMemory, algorithm: SharedAllReduceAlgorithm) throws(CommError) {
        let perRound = memory.exchangeBytes / elementBytes
        var start = 0
        repeat {
            let length = min(perRound, count - start)
            let chunk = buffer + start * elementBytes
            try memory.post(descriptor, context) { $0.copyMemory(from: chunk, byteCount: length * elementBytes) }
            try memory.await(0..<worldSize, descriptor, context)
            switch algorithm {
            case .oneShot:
                Reduction.reduce(op, dtype: dtype, sources: memory.gatherSources(offset: 0), into: chunk, count: length)
                memory.finish()
            case .twoShot:
                let slices = partition(length, into: worldSize)
                let mine = slices[rank]
                let offset = mine.lowerBound * elementBytes
                Reduction.reduce(op, dtype: dtype, sources: memory.gatherSources(offset: offset), into: chunk + offset, count: mine.count)
                memory.finish()
                try memory.post(descriptor, context) { ($0 + offset).copyMemory(from: chunk + offset, byteCount: mine.count * elementBytes) }
                try memory.await(0..<worldSize, descriptor, context)
                for peer in 0..<worldSize where peer != rank {
                    let slice = slices[peer]
                    (chunk + slice.lowerBound * elementBytes).copyMemory(
                        from: memory.half(of: peer) + slice.lowerBound * elementBytes, byteCount: slice.count * elementBytes)
                }
                memory.finish()
            }
            start += length
        } while start < count
    }

    /// All-gather of byte `blocks` (one per rank) into `output`; `input` is this rank's block. This rank's
    /// own block is copied while the peers read its first post.
    func sharedAllGather(_ input: UnsafeRawPointer, into output: UnsafeMutableRawPointer, blocks: [Range<Int>], memory: ShmMemory) throws(CommError) {
        let own = blocks[rank]
        let longest = largest(blocks)
        var offset = 0
        repeat {
            let mine = max(min(memory.exchangeBytes, own.count - offset), 0)
            try memory.post(descriptor, context) { $0.copyMemory(from: input + offset, byteCount: mine) }
            if offset == 0 && input != UnsafeRawPointer(output + own.lowerBound) {
                (output + own.lowerBound).copyMemory(from: input, byteCount: own.count)
            }
            try memory.await(0..<worldSize, descriptor, context)
            for peer in 0..<worldSize where peer != rank {
                let piece = min(memory.exchangeBytes, blocks[peer].count - offset)
                if piece > 0 {
                    (output + blocks[peer].lowerBound + offset).copyMemory(from: memory.half(of: peer), byteCount: piece)
                }
            }
            memory.finish()
            offset += memory.exchangeBytes
        } while offset < longest
    }

    /// Reduce-scatter over element `blocks` of `source`: rank r gets block r reduced in rank order in `output`.
    /// Each round carries the next piece of every other rank's block, one sub-slot per destination rank; a
    /// rank's own block is read straight from its `source`.
    func sharedReduceScatter(
        _ source: UnsafeRawPointer, blocks: [Range<Int>], op: ReduceOp, into output: UnsafeMutableRawPointer, memory: ShmMemory
    ) throws(CommError) {
        let slotBytes = memory.subSlotBytes
        let perSlot = slotBytes / elementBytes
        let longest = largest(blocks)
        var offset = 0
        repeat {
            try memory.post(descriptor, context) { half in
                for (peer, block) in blocks.enumerated() where peer != rank {
                    let piece = max(min(perSlot, block.count - offset), 0)
                    (half + peer * slotBytes).copyMemory(from: source + (block.lowerBound + offset) * elementBytes, byteCount: piece * elementBytes)
                }
            }
            try memory.await(0..<worldSize, descriptor, context)
            let mine = max(min(perSlot, blocks[rank].count - offset), 0)
            if mine > 0 {
                let sources = memory.gatherSources(offset: rank * slotBytes)
                memory.sources[rank] = source + (blocks[rank].lowerBound + offset) * elementBytes
                Reduction.reduce(op, dtype: dtype, sources: sources, into: output + offset * elementBytes, count: mine)
            }
            memory.finish()
            offset += perSlot
        } while offset < longest
    }

    /// Copies `bytes` of `buffer` from `root` to every rank.
    func sharedBroadcast(_ buffer: UnsafeMutableRawPointer, bytes: Int, root: Int, memory: ShmMemory) throws(CommError) {
        var offset = 0
        repeat {
            let piece = min(memory.exchangeBytes, bytes - offset)
            if rank == root {
                try memory.post(descriptor, context) { $0.copyMemory(from: buffer + offset, byteCount: piece) }
            } else {
                try memory.await([root], descriptor, context)
                (buffer + offset).copyMemory(from: memory.half(of: root), byteCount: piece)
            }
            memory.finish()
            offset += memory.exchangeBytes
        } while offset < bytes
    }

    /// Collects every rank's `blockBytes` into `output` at `root`, in rank order.
    func sharedGather(_ input: UnsafeRawPointer, blockBytes: Int, into output: UnsafeMutableRawPointer?, root: Int, memory: ShmMemory) throws(CommError) {
        if rank == root { output!.advanced(by: rank * blockBytes).copyMemory(from: input, byteCount: blockBytes) }
        var offset = 0
        repeat {
            let piece = min(memory.exchangeBytes, blockBytes - offset)
            if rank == root {
                try memory.await(0..<worldSize, descriptor, context)
                for peer in 0..<worldSize where peer != rank {
                    (output! + peer * blockBytes + offset).copyMemory(from: memory.half(of: peer), byteCount: piece)
                }
            } else {
                try memory.post(descriptor, context) { $0.copyMemory(from: input + offset, byteCount: piece) }
            }
            memory.finish()
            offset += memory.exchangeBytes
        } while offset < blockBytes
    }

    /// Gives rank p block p of `input` (at `root`), one sub-slot per rank per round.
    func sharedScatter(_ input: UnsafeRawPointer?, blockBytes: Int, into output: UnsafeMutableRawPointer, root: Int, memory: ShmMemory) throws(CommError) {
        if rank == root { output.copyMemory(from: input! + rank * blockBytes, byteCount: blockBytes) }
        let slotBytes = memory.subSlotBytes
        var offset = 0
        repeat {
            let piece = min(slotBytes, blockBytes - offset)
            if rank == root {
                try memory.post(descriptor, context) { half in
                    for peer in 0..<worldSize where peer != rank {
                        (half + peer * slotBytes).copyMemory(from: input! + peer * blockBytes + offset, byteCount: piece)
                    }
                }
            } else {
                try memory.await([root], descriptor, context)
                (output + offset).copyMemory(from: memory.half(of: root) + rank * slotBytes, byteCount: piece)
            }
            memory.finish()
            offset += slotBytes
        } while offset < blockBytes
    }
}
