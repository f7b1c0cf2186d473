/// Messages at most this large (all ranks' blocks together) gather by direct exchange (recursive doubling on
/// power-of-two worlds above 2); larger ones by ring.
let directGatherLimitBytes = 64 << 10

/// Whether a small all-gather among `worldSize` ranks uses recursive doubling rather than direct exchange.
func gathersByRecursiveDoubling(worldSize: Int) -> Bool {
    worldSize > 2 && worldSize & (worldSize - 1) == 0
}

extension Collective {
    /// Gathers every rank's block into `output`, where `blocks` are the byte ranges of each rank's block and
    /// `input` is this rank's contribution (it may already be in place in `output`).
    ///
    /// This rank's block is sent straight from `input` and copied into `output` only after the exchange, so
    /// the copy never delays the first message.
    func allGather(_ input: UnsafeRawPointer, into output: UnsafeMutableRawPointer, blocks: [Range<Int>]) throws(CommError) {
        let own = blocks[rank]
        defer {
            if input != UnsafeRawPointer(output + own.lowerBound) {
                (output + own.lowerBound).copyMemory(from: input, byteCount: own.count)
            }
        }
        if worldSize == 1 { return }
        if (blocks.last?.upperBound ?? 0) <= directGatherLimitBytes && gathersByRecursiveDoubling(worldSize: worldSize) {
            try recursiveDoublingAllGather(input, into: output, blocks: blocks)
        } else if (blocks.last?.upperBound ?? 0) <= directGatherLimitBytes {
            var sends: [OutgoingMessage] = []
            var receives: [IncomingMessage] = []
            for peer in 0..<worldSize where peer != rank {
                sends.append(send(to: peer, input, bytes: own.count))
                receives.append(receive(from: peer, into: output + blocks[peer].lowerBound, bytes: blocks[peer].count))
            }
            try transfer(sends, receives)
        } else {
            try ringAllGather(output, blocks: blocks, ownInput: input)
        }
    }

    /// Recursive doubling: in round k a rank swaps everything it holds (a run of 2^k consecutive blocks) with
    /// the rank 2^k away, so after log2 n pairwise rounds every rank holds every block.
    private func recursiveDoublingAllGather(
        _ input: UnsafeRawPointer, into output: UnsafeMutableRawPointer, blocks: [Range<Int>]
    ) throws(CommError) {
        (output + blocks[rank].lowerBound).copyMemory(from: input, byteCount: blocks[rank].count)
        var mask = 1
        while mask < worldSize {
            let partner = rank ^ mask
            let mine = (rank & ~(mask - 1))..<(rank & ~(mask - 1)) + mask
            let theirs = (partner & ~(mask - 1))..<(partner & ~(mask - 1)) + mask
            let held = blocks[mine.lowerBound].lowerBound..<blocks[mine.upperBound - 1].upperBound
            let coming = blocks[theirs.lowerBound].lowerBound..<blocks[theirs.upperBound - 1].upperBound
            try transfer(
                [send(to: partner, output + held.lowerBound, bytes: held.count)],
                [receive(from: partner, into: output + coming.lowerBound, bytes: coming.count)])
            mask <<= 1
        }
    }

    /// Ring all-gather: at step s, rank r forwards block r-s to r+1 and receives block r-s-1 from r-1, so each
    /// link carries (n-1)/n of the data, in both directions of the ring at once.
    /// The first step sends this rank's block from `ownInput`, later ones forward blocks received into `output`.
    func ringAllGather(_ output: UnsafeMutableRawPointer, blocks: [Range<Int>], ownInput: UnsafeRawPointer) throws(CommError) {
        let next = wrap(rank + 1)
        let previous = wrap(rank - 1)
        for step in 0..<worldSize - 1 {
            let outgoing = blocks[wrap(rank - step)]
            let incoming = blocks[wrap(rank - step - 1)]
            let source = step == 0 ? ownInput : UnsafeRawPointer(output + outgoing.lowerBound)
            try transfer(
                [send(to: next, source, bytes: outgoing.count)],
                [receive(from: previous, into: output + incoming.lowerBound, bytes: incoming.count)])
        }
    }
}
