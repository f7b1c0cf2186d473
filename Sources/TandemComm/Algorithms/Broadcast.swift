/// How broadcast moves data.
public enum BroadcastAlgorithm: String, Sendable {
    /// Binomial tree, log2 n rounds.
    case tree
    /// Pipelined chain root → root+1 → … in segments.
    case chain

    /// Broadcasts of at most this many bytes go down a binomial tree; larger ones down a pipelined chain.
    static let treeLimitBytes = 64 << 10

    /// The algorithm for a broadcast of `bytes`.
    static func choose(bytes: Int) -> BroadcastAlgorithm {
        bytes <= treeLimitBytes ? .tree : .chain
    }
}

extension Collective {
    /// Copies `bytes` of `buffer` from `root` to every rank with `algorithm`.
    func messageBroadcast(_ buffer: UnsafeMutableRawPointer, bytes: Int, root: Int, algorithm: BroadcastAlgorithm) throws(CommError) {
        switch algorithm {
        case .tree: try treeBroadcast(buffer, bytes: bytes, root: root)
        case .chain: try chainBroadcast(buffer, bytes: bytes, root: root)
        }
    }

    /// Binomial tree: log2 n rounds; a rank receives once from its parent, then sends to its children,
    /// largest subtree first. No rank sends more than log2 n copies (the root's direct send would be n-1),
    /// and each rank waits on one peer, which suits oversubscribed hosts.
    private func treeBroadcast(_ buffer: UnsafeMutableRawPointer, bytes: Int, root: Int) throws(CommError) {
        let position = wrap(rank - root)
        var mask = 1
        while mask < worldSize {
            if position & mask != 0 {
                try transfer([], [receive(from: wrap(position - mask + root), into: buffer, bytes: bytes)])
                break
            }
            mask <<= 1
        }
        mask >>= 1
        while mask > 0 {
            if position + mask < worldSize {
                try transfer([send(to: wrap(position + mask + root), buffer, bytes: bytes)], [])
            }
            mask >>= 1
        }
    }

    /// Pipelined chain root → root+1 → …: each rank forwards segment k-1 while receiving segment k, so all
    /// links are busy at once and the time approaches bytes / link bandwidth for large messages.
    private func chainBroadcast(_ buffer: UnsafeMutableRawPointer, bytes: Int, root: Int) throws(CommError) {
        let position = wrap(rank - root)
        let next = position == worldSize - 1 ? nil : wrap(rank + 1)
        let previous = position == 0 ? nil : wrap(rank - 1)
        let segments = pieceCount(bytes, size: ringSegmentBytes)
        let whole = 0..<bytes
        for index in 0...segments {
            var sends: [OutgoingMessage] = []
            var receives: [IncomingMessage] = []
            // The root sends segment `index`; every other rank forwards the segment it received last round.
            let forwarded = previous == nil ? index : index - 1
            if let next, forwarded >= 0, forwarded < segments {
                let range = piece(forwarded, of: whole, size: ringSegmentBytes)
                sends.append(send(to: next, buffer + range.lowerBound, bytes: range.count))
            }
            if let previous, index < segments {
                let range = piece(index, of: whole, size: ringSegmentBytes)
                receives.append(receive(from: previous, into: buffer + range.lowerBound, bytes: range.count))
            }
            try transfer(sends, receives)
        }
    }
}
