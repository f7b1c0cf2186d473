/// Messages at most this large (all ranks' blocks together) gather by direct exchange; larger ones by ring.
let directGatherLimitBytes = 64 << 10

extension Collective {
    /// Gathers every rank's block into `output`, where `blocks` are the byte ranges of each rank's block and
    /// this rank's block is already in place.
    func allGather(_ output: UnsafeMutableRawPointer, blocks: [Range<Int>]) throws(CommError) {
        if worldSize == 1 { return }
        if (blocks.last?.upperBound ?? 0) <= directGatherLimitBytes {
            var sends: [OutgoingMessage] = []
            var receives: [IncomingMessage] = []
            let own = blocks[rank]
            for peer in 0..<worldSize where peer != rank {
                sends.append(send(to: peer, output + own.lowerBound, bytes: own.count))
                receives.append(receive(from: peer, into: output + blocks[peer].lowerBound, bytes: blocks[peer].count))
            }
            try transfer(sends, receives)
        } else {
            try ringAllGather(output, blocks: blocks)
        }
    }

    /// Ring all-gather: at step s, rank r forwards block r-s to r+1 and receives block r-s-1 from r-1, so each
    /// link carries (n-1)/n of the data, in both directions of the ring at once.
    func ringAllGather(_ output: UnsafeMutableRawPointer, blocks: [Range<Int>]) throws(CommError) {
        let next = wrap(rank + 1)
        let previous = wrap(rank - 1)
        for step in 0..<worldSize - 1 {
            let outgoing = blocks[wrap(rank - step)]
            let incoming = blocks[wrap(rank - step - 1)]
            try transfer(
                [send(to: next, output + outgoing.lowerBound, bytes: outgoing.count)],
                [receive(from: previous, into: output + incoming.lowerBound, bytes: incoming.count)])
        }
    }
}
