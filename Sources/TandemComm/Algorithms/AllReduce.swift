import TandemTensor

/// How all-reduce moves data.
public enum AllReduceAlgorithm: String, Sendable, CaseIterable {
    /// Below `directLimitBytes`: direct exchange for two ranks, recursive doubling for more; ring above.
    case auto
    /// Ring reduce-scatter then ring all-gather: each rank sends 2(n-1)/n of the data; bandwidth-optimal.
    case ring
    /// One round: every rank sends its whole buffer to every other rank and reduces all contributions in rank
    /// order; latency-optimal for small messages when every rank has a core of its own.
    case direct
    /// log2(n) rounds of pairwise exchange (ranks beyond the largest power of two fold in first and get the
    /// result back at the end); each round waits on one peer only, which suits oversubscribed hosts.
    case recursiveDoubling = "recursive_doubling"
    /// Shared memory only (`SharedAllReduceAlgorithm.oneShot`); TCP groups treat it as `auto`.
    case oneShot = "one_shot"
    /// Shared memory only (`SharedAllReduceAlgorithm.twoShot`); TCP groups treat it as `auto`.
    case twoShot = "two_shot"

    /// Messages at most this large use `direct` under `auto`.
    public static let directLimitBytes = 64 << 10

    /// The algorithm used for a message of `bytes` among `worldSize` ranks with this choice.
    func resolved(bytes: Int, worldSize: Int) -> AllReduceAlgorithm {
        switch self {
        case .auto, .oneShot, .twoShot: bytes > Self.directLimitBytes ? .ring : worldSize <= 2 ? .direct : .recursiveDoubling
        case .ring, .direct, .recursiveDoubling: self
        }
    }

    /// The shared-memory algorithm for `bytes` among `worldSize` ranks with this choice: the forced one, or by
    /// size when this is `auto` or a TCP algorithm.
    func resolvedShared(bytes: Int, worldSize: Int) -> SharedAllReduceAlgorithm {
        switch self {
        case .oneShot: .oneShot
        case .twoShot: .twoShot
        case .auto, .ring, .direct, .recursiveDoubling: SharedAllReduceAlgorithm.choose(bytes: bytes, worldSize: worldSize)
        }
    }
}

/// Bytes per ring and chain segment: the unit that bounds scratch memory and pipelines reduction with
/// transfer (256 KiB measured best of 128 KiB–4 MiB for 16 MiB all-reduce here; docs/PERFORMANCE.md).
let ringSegmentBytes = 256 << 10

extension Collective {
    /// Reduces `count` elements of `buffer` across all ranks in place with `algorithm` (already resolved for the
    /// message size).
    func messageAllReduce(_ buffer: UnsafeMutableRawPointer, op: ReduceOp, algorithm: AllReduceAlgorithm) throws(CommError) {
        switch algorithm {
        case .direct, .auto, .oneShot, .twoShot:
            try directAllReduce(buffer, op: op)
        case .recursiveDoubling:
            try recursiveDoublingAllReduce(buffer, op: op)
        case .ring:
            let chunks = partition(count, into: worldSize)
            try ringReduceScatter(source: buffer, blocks: chunks, op: op, output: nil)
            try ringAllGather(
                buffer, blocks: chunks.map { $0.lowerBound * elementBytes..<$0.upperBound * elementBytes },
                ownInput: buffer + chunks[rank].lowerBound * elementBytes)
        }
    }

    /// Every rank sends its whole buffer to every peer, then reduces the contributions in rank order, so
    /// every rank computes bitwise the same result.
    private func directAllReduce(_ buffer: UnsafeMutableRawPointer, op: ReduceOp) throws(CommError) {
        let bytes = count * elementBytes
        let scratch = UnsafeMutableRawPointer.allocate(byteCount: max(bytes * worldSize, 1), alignment: 64)
        defer { scratch.deallocate() }
        var sends: [OutgoingMessage] = []
        var receives: [IncomingMessage] = []
        for peer in 0..<worldSize where peer != rank {
            sends.append(send(to: peer, buffer, bytes: bytes))
            receives.append(receive(from: peer, into: scratch + peer * bytes, bytes: bytes))
        }
        try transfer(sends, receives)
        (scratch + rank * bytes).copyMemory(from: buffer, byteCount: bytes)
        for contributor in 1..<worldSize {
            Reduction.combine(op, dtype: dtype, into: scratch, from: scratch + contributor * bytes, count: count)
        }
        buffer.copyMemory(from: scratch, byteCount: bytes)
    }

    /// Recursive doubling. Every rank combines the same partial sums in the same tree, and the reductions are
    /// commutative, so every rank ends with bitwise the same result.
    private func recursiveDoublingAllReduce(_ buffer: UnsafeMutableRawPointer, op: ReduceOp) throws(CommError) {
        let bytes = count * elementBytes
        let scratch = UnsafeMutableRawPointer.allocate(byteCount: max(bytes, 1), alignment: 64)
        defer { scratch.deallocate() }
        var powerOfTwo = 1
        while powerOfTwo * 2 <= worldSize { powerOfTwo *= 2 }
        let extra = worldSize - powerOfTwo
        if rank >= powerOfTwo {
            let partner = rank - powerOfTwo
            try transfer([send(to: partner, buffer, bytes: bytes)], [])
            try transfer([], [receive(from: partner, into: buffer, bytes: bytes)])
            return
        }
        if rank < extra {
            try transfer([], [receive(from: rank + powerOfTwo, into: scratch, bytes: bytes)])
            Reduction.combine(op, dtype: dtype, into: buffer, from: scratch, count: count)
        }
        var mask = 1
        while mask < powerOfTwo {
            let partner = rank ^ mask
            try transfer([send(to: partner, buffer, bytes: bytes)], [receive(from: partner, into: scratch, bytes: bytes)])
            Reduction.combine(op, dtype: dtype, into: buffer, from: scratch, count: count)
            mask <<= 1
        }
        if rank < extra {
            try transfer([send(to: rank + powerOfTwo, buffer, bytes: bytes)], [])
        }
    }

    /// Ring reduce-scatter over `blocks` (element ranges of `source`): afterwards rank r holds block r fully
    /// reduced — in `source` itself when `output` is nil, else in `output`, leaving `source` untouched.
    ///
    /// Segments run in the outer loop so that scratch memory is two segments whatever the message size.
    func ringReduceScatter(
        source: UnsafeMutableRawPointer, blocks: [Range<Int>], op: ReduceOp, output: UnsafeMutableRawPointer?
    ) throws(CommError) {
        let segmentElements = max(1, ringSegmentBytes / elementBytes)
        let segments = blocks.map { pieceCount($0.count, size: segmentElements) }.max() ?? 0
        let scratch = UnsafeMutableRawPointer.allocate(byteCount: max(2 * segmentElements * elementBytes, 1), alignment: 64)
        defer { scratch.deallocate() }
        let next = wrap(rank + 1)
        let previous = wrap(rank - 1)
        for segment in 0..<segments {
            // In out-of-place mode the partial to forward lives in one scratch half while the next arrives in the other.
            var forward: UnsafeMutableRawPointer? = nil
            for step in 0..<worldSize - 1 {
                let sendPiece = piece(segment, of: blocks[wrap(rank - step - 1)], size: segmentElements)
                let receivePiece = piece(segment, of: blocks[wrap(rank - step - 2)], size: segmentElements)
                let isLast = step == worldSize - 2
                let incoming: UnsafeMutableRawPointer
                if output != nil {
                    incoming = isLast ? output! + (receivePiece.lowerBound - blocks[rank].lowerBound) * elementBytes
                        : scratch + (step % 2) * segmentElements * elementBytes
                } else {
                    incoming = scratch
                }
                var sends: [OutgoingMessage] = []
                var receives: [IncomingMessage] = []
                if !sendPiece.isEmpty {
                    let from = output == nil || step == 0 ? UnsafeRawPointer(source + sendPiece.lowerBound * elementBytes) : UnsafeRawPointer(forward!)
                    sends.append(send(to: next, from, bytes: sendPiece.count * elementBytes))
                }
                if !receivePiece.isEmpty {
                    receives.append(receive(from: previous, into: incoming, bytes: receivePiece.count * elementBytes))
                }
                try transfer(sends, receives)
                guard !receivePiece.isEmpty else { continue }
                let own = source + receivePiece.lowerBound * elementBytes
                if output == nil {
                    Reduction.combine(op, dtype: dtype, into: own, from: incoming, count: receivePiece.count)
                } else {
                    Reduction.combine(op, dtype: dtype, into: incoming, from: own, count: receivePiece.count)
                    forward = incoming
                }
            }
        }
    }
}
