/// How all-gather moves data.
public enum AllGatherAlgorithm: String, Sendable {
    /// Every rank sends its block to every other rank in one round.
    case direct
    /// log2 n pairwise rounds, each swapping everything gathered so far.
    case recursiveDoubling = "recursive_doubling"
    /// n-1 steps around the ring; each link carries (n-1)/n of the data.
    case ring

    /// Gathers of at most this many bytes (all ranks' blocks together) use a latency algorithm.
    public static let smallLimitBytes = 64 << 10

    /// Small gathers: recursive doubling on power-of-two worlds above 2, direct exchange otherwise; ring above.
    static func choose(bytes: Int, worldSize: Int) -> AllGatherAlgorithm {
        if bytes > smallLimitBytes { return .ring }
        return worldSize > 2 && worldSize & (worldSize - 1) == 0 ? .recursiveDoubling : .direct
    }
}

extension Collective {
    /// Gathers every rank's block into `output`, where `blocks` are the byte ranges of each rank's block and
    /// `input` is this rank's contribution (it may already be in place in `output`).
    ///
    /// This rank's block is sent straight from `input` and copied into `output` only after the exchange, so
    /// the copy never delays the first message.
    func messageAllGather(
        _ input: UnsafeRawPointer, into output: UnsafeMutableRawPointer, blocks: [Range<Int>], algorithm: AllGatherAlgorithm
    ) throws(CommError) {
        let own = blocks[rank]
        defer {
            if input != UnsafeRawPointer(output + own.lowerBound) {
                (output + own.lowerBound).copyMemory(from: input, byteCount: own.count)
            }
        }
        switch algorithm {
        case .recursiveDoubling:
            try recursiveDoublingAllGather(input, into: output, blocks: blocks)
        case .direct:
            var sends: [OutgoingMessage] = []
            var receives: [IncomingMessage] = []
            for peer in 0..<worldSize where peer != rank {
                sends.append(send(to: peer, input, bytes: own.count))
                receives.append(receive(from: peer, into: output + blocks[peer].lowerBound, bytes: blocks[peer].count))
            }
            try transfer(sends, receives)
        case .ring:
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
