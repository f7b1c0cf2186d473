extension Collective {
    /// Collects every rank's `blockBytes` into `output` at `root` (rank order); others only send `input`.
    func messageGather(_ input: UnsafeRawPointer, blockBytes: Int, into output: UnsafeMutableRawPointer?, root: Int) throws(CommError) {
        if rank == root {
            let output = output!
            (output + rank * blockBytes).copyMemory(from: input, byteCount: blockBytes)
            let receives = (0..<worldSize).filter { $0 != root }.map {
                receive(from: $0, into: output + $0 * blockBytes, bytes: blockBytes)
            }
            try transfer([], receives)
        } else {
            try transfer([send(to: root, input, bytes: blockBytes)], [])
        }
    }

    /// Sends block p of `input` (at `root`) to rank p's `output`.
    func messageScatter(_ input: UnsafeRawPointer?, blockBytes: Int, into output: UnsafeMutableRawPointer, root: Int) throws(CommError) {
        if rank == root {
            let input = input!
            output.copyMemory(from: input + rank * blockBytes, byteCount: blockBytes)
            let sends = (0..<worldSize).filter { $0 != root }.map {
                send(to: $0, input + $0 * blockBytes, bytes: blockBytes)
            }
            try transfer(sends, [])
        } else {
            try transfer([], [receive(from: root, into: output, bytes: blockBytes)])
        }
    }

    /// All-to-all with per-peer byte ranges: `sendBlocks[p]` of `input` goes to rank p, whose block from this
    /// rank lands at `receiveBlocks[rank]` of its `output`. All pairs move at once.
    ///
    /// Each message's header carries its own element count, so a sender and receiver that disagree on one
    /// pair's size get a mismatch naming that pair.
    func messageAllToAll(
        _ input: UnsafeRawPointer, sendBlocks: [Range<Int>], into output: UnsafeMutableRawPointer, receiveBlocks: [Range<Int>]
    ) throws(CommError) {
        let own = sendBlocks[rank]
        (output + receiveBlocks[rank].lowerBound).copyMemory(from: input + own.lowerBound, byteCount: own.count)
        var sends: [OutgoingMessage] = []
        var receives: [IncomingMessage] = []
        for peer in 0..<worldSize where peer != rank {
            let outgoing = sendBlocks[peer]
            let incoming = receiveBlocks[peer]
            sends.append(send(to: peer, input + outgoing.lowerBound, bytes: outgoing.count, count: outgoing.count / elementBytes))
            receives.append(receive(from: peer, into: output + incoming.lowerBound, bytes: incoming.count, count: incoming.count / elementBytes))
        }
        try transfer(sends, receives)
    }
}

import TandemTensor
