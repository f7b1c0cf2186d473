import TandemTensor

/// What moves a group's bytes: one implementation per data plane (`TCPBackend`, `SharedMemoryBackend`,
/// `HierarchicalBackend`), behind which the group's core (`ProcessGroup`: validation, plans, sequence numbers,
/// failure state, executor) stays the same.
///
/// The core calls a backend from inside an operation's turn with a `Collective` step that carries the
/// operation's identity (group, operation, sequence number, deadline, dtype, agreed count). A backend sees raw
/// buffers, ranks of its own group, and never `ReduceOp.avg`: the core reduces with `sum` and divides once
/// (`ProcessGroup.finishAverage`), so every backend averages alike. Failures are `CommError`s naming the group.
///
/// Point-to-point messages, and the message-passing algorithms a backend does not replace, run over its
/// `transport` (the defaults below).
protocol CommBackend: AnyObject, Sendable {
    /// What `ProcessGroup.backend` reports.
    var kind: GroupBackend { get }
    /// The point-to-point path: `send`/`recv`, batches, and the default algorithms.
    var transport: any MessageTransport { get }

    /// Reduces `step.count` elements of `buffer` across the group, in place; every rank ends with the same bits.
    func allReduce(_ buffer: UnsafeMutableRawPointer, op: ReduceOp, _ step: Collective) throws(CommError)
    /// Rank r receives element block r of `source`, reduced over all ranks, in `output`; `source` stays as it was
    /// unless the backend documents otherwise.
    func reduceScatter(
        _ source: UnsafeMutableRawPointer, blocks: [Range<Int>], op: ReduceOp, into output: UnsafeMutableRawPointer, _ step: Collective
    ) throws(CommError)
    /// Gathers every rank's byte block (`blocks`, one per rank) into `output`; `input` is this rank's block.
    func allGather(_ input: UnsafeRawPointer, into output: UnsafeMutableRawPointer, blocks: [Range<Int>], _ step: Collective) throws(CommError)
    /// Copies `bytes` of `buffer` from `root` to every rank.
    func broadcast(_ buffer: UnsafeMutableRawPointer, bytes: Int, root: Int, _ step: Collective) throws(CommError)
    /// Collects every rank's `blockBytes` into `output` at `root`, in rank order.
    func gather(_ input: UnsafeRawPointer, blockBytes: Int, into output: UnsafeMutableRawPointer?, root: Int, _ step: Collective) throws(CommError)
    /// Gives rank p block p of `input` (at `root`).
    func scatter(_ input: UnsafeRawPointer?, blockBytes: Int, into output: UnsafeMutableRawPointer, root: Int, _ step: Collective) throws(CommError)
    /// All-to-all with per-peer byte ranges (see `Collective.messageAllToAll`).
    func allToAll(
        _ input: UnsafeRawPointer, sendBlocks: [Range<Int>], into output: UnsafeMutableRawPointer, receiveBlocks: [Range<Int>],
        _ step: Collective
    ) throws(CommError)
    /// Returns once every rank has entered.
    func barrier(_ step: Collective) throws(CommError)
    /// The name of the algorithm `operation` runs for a message of `bytes` (benchmarks and logs).
    func algorithmName(_ operation: OperationKind, bytes: Int, worldSize: Int) -> String
}

extension CommBackend {
    func gather(_ input: UnsafeRawPointer, blockBytes: Int, into output: UnsafeMutableRawPointer?, root: Int, _ step: Collective) throws(CommError) {
        try step.messageGather(input, blockBytes: blockBytes, into: output, root: root)
    }

    func scatter(_ input: UnsafeRawPointer?, blockBytes: Int, into output: UnsafeMutableRawPointer, root: Int, _ step: Collective) throws(CommError) {
        try step.messageScatter(input, blockBytes: blockBytes, into: output, root: root)
    }

    func allToAll(
        _ input: UnsafeRawPointer, sendBlocks: [Range<Int>], into output: UnsafeMutableRawPointer, receiveBlocks: [Range<Int>],
        _ step: Collective
    ) throws(CommError) {
        try step.messageAllToAll(input, sendBlocks: sendBlocks, into: output, receiveBlocks: receiveBlocks)
    }

    /// An all-gather of empty blocks: every rank hears from every other before it leaves.
    func barrier(_ step: Collective) throws(CommError) {
        var placeholder: UInt8 = 0
        try withUnsafeMutableBytes(of: &placeholder) { (buffer) throws(CommError) in
            try allGather(buffer.baseAddress!, into: buffer.baseAddress!, blocks: Array(repeating: 0..<0, count: step.worldSize), step)
        }
    }
}
