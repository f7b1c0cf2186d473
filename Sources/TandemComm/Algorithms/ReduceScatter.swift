import TandemTensor

/// How reduce-scatter moves data; chosen from the group's all-reduce setting so one knob steers both.
public enum ReduceScatterAlgorithm: String, Sendable {
    /// Ring reduce-scatter, segments outer and steps inner (scratch is two segments).
    case ring
    /// log2 n pairwise rounds, each halving the blocks a rank is responsible for.
    case recursiveHalving = "recursive_halving"
    /// Block p straight to rank p, reduced there in rank order.
    case direct

    /// The algorithm for `bytes` of input among `worldSize` ranks under the all-reduce choice `allReduce`.
    static func choose(bytes: Int, worldSize: Int, allReduce: AllReduceAlgorithm) -> ReduceScatterAlgorithm {
        switch allReduce.resolved(bytes: bytes, worldSize: worldSize) {
        case .ring: .ring
        case .recursiveDoubling where worldSize & (worldSize - 1) == 0: .recursiveHalving
        case .recursiveDoubling, .direct, .auto, .oneShot, .twoShot: .direct
        }
    }
}

extension Collective {
    /// Reduce-scatter over `blocks` (element ranges of `source`, one per rank): rank r receives block r, reduced
    /// over all ranks, in `output`; `source` is left untouched.
    ///
    /// `ReduceScatterAlgorithm.choose` picks recursive halving for small messages when the world is a power of
    /// two larger than 2 (log2 n pairwise rounds, which suits oversubscribed hosts), direct exchange for other
    /// small ones, the ring for large ones.
    func messageReduceScatter(
        _ source: UnsafeMutableRawPointer, blocks: [Range<Int>], op: ReduceOp, into output: UnsafeMutableRawPointer,
        algorithm: ReduceScatterAlgorithm
    ) throws(CommError) {
        switch algorithm {
        case .ring: try ringReduceScatter(source: source, blocks: blocks, op: op, output: output)
        case .recursiveHalving: try recursiveHalvingReduceScatter(source, blocks: blocks, op: op, into: output)
        case .direct: try directReduceScatter(source, blocks: blocks, op: op, into: output)
        }
    }

    /// Direct reduce-scatter for small messages: block p goes to rank p, which reduces the contributions in
    /// rank order into `output`.
    func directReduceScatter(
        _ input: UnsafeRawPointer, blocks: [Range<Int>], op: ReduceOp, into output: UnsafeMutableRawPointer
    ) throws(CommError) {
        let own = blocks[rank]
        let bytes = own.count * elementBytes
        let scratch = UnsafeMutableRawPointer.allocate(byteCount: max(bytes * worldSize, 1), alignment: 64)
        defer { scratch.deallocate() }
        var sends: [OutgoingMessage] = []
        var receives: [IncomingMessage] = []
        for peer in 0..<worldSize where peer != rank {
            let block = blocks[peer]
            sends.append(send(to: peer, input + block.lowerBound * elementBytes, bytes: block.count * elementBytes))
            receives.append(receive(from: peer, into: scratch + peer * bytes, bytes: bytes))
        }
        try transfer(sends, receives)
        (scratch + rank * bytes).copyMemory(from: input + own.lowerBound * elementBytes, byteCount: bytes)
        for contributor in 1..<worldSize {
            Reduction.combine(op, dtype: dtype, into: scratch, from: scratch + contributor * bytes, count: own.count)
        }
        output.copyMemory(from: scratch, byteCount: bytes)
    }

    /// Recursive halving for a power-of-two world: in each round a rank keeps half of the blocks it is still
    /// responsible for, sends the other half to its partner and adds the partner's contribution to the half it
    /// keeps; after log2 n rounds it holds its own block. Each block's sum is computed by one rank only.
    private func recursiveHalvingReduceScatter(
        _ source: UnsafeRawPointer, blocks: [Range<Int>], op: ReduceOp, into output: UnsafeMutableRawPointer
    ) throws(CommError) {
        let total = blocks.last?.upperBound ?? 0
        let working = UnsafeMutableRawPointer.allocate(byteCount: max(2 * total * elementBytes, 1), alignment: 64)
        defer { working.deallocate() }
        working.copyMemory(from: source, byteCount: total * elementBytes)
        let scratch = working + total * elementBytes
        var low = 0
        var high = worldSize
        var mask = worldSize / 2
        while mask >= 1 {
            let partner = rank ^ mask
            let middle = (low + high) / 2
            let (keep, give) = rank & mask == 0 ? (low..<middle, middle..<high) : (middle..<high, low..<middle)
            let kept = blocks[keep.lowerBound].lowerBound..<blocks[keep.upperBound - 1].upperBound
            let given = blocks[give.lowerBound].lowerBound..<blocks[give.upperBound - 1].upperBound
            try transfer(
                [send(to: partner, working + given.lowerBound * elementBytes, bytes: given.count * elementBytes)],
                [receive(from: partner, into: scratch + kept.lowerBound * elementBytes, bytes: kept.count * elementBytes)])
            Reduction.combine(
                op, dtype: dtype, into: working + kept.lowerBound * elementBytes, from: scratch + kept.lowerBound * elementBytes,
                count: kept.count)
            (low, high) = (keep.lowerBound, keep.upperBound)
            mask /= 2
        }
        output.copyMemory(from: working + blocks[rank].lowerBound * elementBytes, byteCount: blocks[rank].count * elementBytes)
    }
}
