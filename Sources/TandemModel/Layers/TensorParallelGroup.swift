import Dispatch
import TandemComm
import TandemTensor

/// Seconds a rank has spent in the tensor-parallel collectives (for `tandem bench generate`'s communication
/// share), and the bytes it sent in the all-reduces of activations. Each rank's model runs on one thread, so no lock.
public final class CommunicationTime: @unchecked Sendable {
    public private(set) var seconds: Double = 0
    /// Bytes this rank sent in activation all-reduces, as their schedules send them: 2 (n − 1) / n of the tensor
    /// for a float32 ring all-reduce, the encoded chunks for a compressed one (`ActivationSync`).
    public private(set) var allReduceBytes = 0

    func count(bytes: Int) { allReduceBytes += bytes }

    func measure<T>(_ body: () throws(CommError) -> T) throws(CommError) -> T {
        let start = DispatchTime.now().uptimeNanoseconds
        defer { seconds += Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 }
        return try body()
    }

    /// Starts counting from zero.
    public func reset() { (seconds, allReduceBytes) = (0, 0) }
}

/// The tensor-parallel group a layer splits over: this rank's place in it and the collectives the layers
/// need. A group of one needs no `ProcessGroup`, so a single-rank model runs with no communication set up.
public struct TensorParallelGroup: Sendable {
    /// This rank's index in the group.
    public let rank: Int
    /// The number of ranks the weights are split over.
    public let size: Int
    /// The group's communicator; nil when `size` is 1.
    public let group: ProcessGroup?
    /// Time spent in this group's collectives.
    public let communication = CommunicationTime()
    /// How the all-reduced activations travel.
    public let activationSync: ActivationSync
    /// The encoded all-reduce's buffers, kept from call to call.
    private let buffers = EncodedAllReduceBuffers()

    /// One rank, no communication.
    public static let single = TensorParallelGroup(rank: 0, size: 1, group: nil, activationSync: .float32)

    /// The tensor-parallel group `group` (every member holds one slice of each split weight), its activations
    /// all-reduced as `activationSync` encodes them.
    public init(_ group: ProcessGroup, activationSync: ActivationSync = .float32) {
        self.init(rank: group.rank, size: group.worldSize, group: group, activationSync: activationSync)
    }

    private init(rank: Int, size: Int, group: ProcessGroup?, activationSync: ActivationSync) {
        self.rank = rank
        self.size = size
        self.group = group
        self.activationSync = activationSync
    }

    /// This rank's share of `count` items split into `size` contiguous parts, the first `count % size` parts
    /// one larger (the vocabulary split; other splits divide evenly).
    public func share(of count: Int) -> Range<Int> {
        let base = count / size
        let extra = count % size
        let start = rank * base + min(rank, extra)
        return start..<(start + base + (rank < extra ? 1 : 0))
    }

    /// Every rank's share size (`share(of:)` on each rank).
    func shareSizes(of count: Int) -> [Int] {
        (0..<size).map { $0 < count % size ? count / size + 1 : count / size }
    }

    /// Sums `tensor` (fp32) over the group in place, its values travelling as `activationSync` encodes them.
    ///
    /// - Throws: `CommError` when the group fails.
    public func allReduce(_ tensor: Tensor) throws(CommError) {
        guard let group else { return }
        guard activationSync != .float32 else {
            communication.count(bytes: 2 * (size - 1) * tensor.byteCount / size)
            return try communication.measure { () throws(CommError) in try group.allReduce(tensor) }
        }
        let blocks = (tensor.count + ActivationSync.blockValues - 1) / ActivationSync.blockValues
        try communication.measure { () throws(CommError) in
            // Gathered while every rank's encoded tensor together is small enough for the all-gather's latency
            // algorithms (a few tokens), chunked beyond.
            if size * activationSync.encodedBytes(blocks: blocks) <= AllGatherAlgorithm.smallLimitBytes {
                try gatheredAllReduce(tensor, blocks: blocks, group: group)
            } else {
                try encodedAllReduce(tensor, group: group)
            }
        }
    }

    /// The all-reduce of a small `tensor` (a few tokens' activations: a decode step of few sequences; `blocks` of
    /// 32 values hold it) with encoded values, in the rounds of a small all-gather: each rank encodes its whole
    /// tensor once, the encoded tensors are gathered (over TCP one direct exchange, or log2 n rounds of recursive
    /// doubling when n is a power of two above 2 — float32's latency rounds), and every rank decodes them and sums
    /// in fp32 in rank order, so all hold the same values. That is one round less than the chunked form's all-to-all and all-gather, and the sum is encoded
    /// once, not twice. Each rank sends (n − 1) encoded tensors: the chunked form's bytes at two ranks, n / 2 times
    /// them among more — for tensors this small a link's round trip costs more than the bytes.
    private func gatheredAllReduce(_ tensor: Tensor, blocks: Int, group: ProcessGroup) throws(CommError) {
        precondition(tensor.dtype == .float32, "activations are all-reduced in float32")
        let (count, codec) = (tensor.count, activationSync)
        let bytes = codec.encodedBytes(blocks: blocks)
        let buffers = self.buffers.prepared(ranks: size, chunkBlocks: blocks, chunkValues: blocks * ActivationSync.blockValues, chunkBytes: bytes)
        let values = tensor.baseAddress.assumingMemoryBound(to: Float.self)
        codec.encode(values, count: count, blocks: blocks, into: buffers.mine.baseAddress)
        try group.allGather(buffers.mine, into: buffers.gathered)
        let addend = buffers.part.baseAddress.assumingMemoryBound(to: Float.self)
        values.update(repeating: 0, count: count)
        for source in 0..<size {
            codec.decode(buffers.gathered.baseAddress + source * bytes, count: count, into: addend)
            for index in 0..<count { values[index] += addend[index] }
        }
        communication.count(bytes: (size - 1) * bytes)
    }

    /// The all-reduce of a larger `tensor` with encoded values: each rank encodes its values in blocks cut into one
    /// chunk per rank, the chunks are exchanged (all-to-all), each rank decodes its chunk from every rank and sums
    /// them in fp32 in rank order, encodes that sum, and the sums are gathered (all-gather) and decoded. Each rank
    /// sends 2 (n − 1) / n of the encoded bytes — what a ring all-reduce sends of the floats — and every rank ends
    /// with the same values (all decode the same bytes).
    private func encodedAllReduce(_ tensor: Tensor, group: ProcessGroup) throws(CommError) {
        precondition(tensor.dtype == .float32, "activations are all-reduced in float32")
        let (count, codec) = (tensor.count, activationSync)
        let chunkBlocks = max(1, (count + ActivationSync.blockValues * size - 1) / (ActivationSync.blockValues * size))
        let (chunkValues, chunkBytes) = (chunkBlocks * ActivationSync.blockValues, codec.encodedBytes(blocks: chunkBlocks))
        let values = tensor.baseAddress.assumingMemoryBound(to: Float.self)
        func range(_ chunk: Int) -> Range<Int> { min(chunk * chunkValues, count)..<min((chunk + 1) * chunkValues, count) }
        let buffers = self.buffers.prepared(ranks: size, chunkBlocks: chunkBlocks, chunkValues: chunkValues, chunkBytes: chunkBytes)
        let (outgoing, incoming, mine, gathered) = (buffers.outgoing, buffers.incoming, buffers.mine, buffers.gathered)
        for chunk in 0..<size {
            codec.encode(values + range(chunk).lowerBound, count: range(chunk).count, blocks: chunkBlocks, into: outgoing.baseAddress + chunk * chunkBytes)
        }
        try group.allToAll(outgoing, into: incoming)
        let (total, addend) = (buffers.sum.baseAddress.assumingMemoryBound(to: Float.self), buffers.part.baseAddress.assumingMemoryBound(to: Float.self))
        total.initialize(repeating: 0, count: chunkValues)
        for source in 0..<size {
            codec.decode(incoming.baseAddress + source * chunkBytes, count: chunkValues, into: addend)
            for index in 0..<chunkValues { total[index] += addend[index] }
        }
        codec.encode(total, count: chunkValues, blocks: chunkBlocks, into: mine.baseAddress)
        try group.allGather(mine, into: gathered)
        for chunk in 0..<size where !range(chunk).isEmpty {
            codec.decode(gathered.baseAddress + chunk * chunkBytes, count: range(chunk).count, into: values + range(chunk).lowerBound)
        }
        communication.count(bytes: 2 * (size - 1) * chunkBytes)
    }

    /// Every rank's `[rows, share]` slice side by side, `[rows, total]`, on rank `root` only (nil elsewhere).
    /// Slices are padded to the largest share so one fixed-size gather carries them.
    func gatherColumns(_ tensor: Tensor, total: Int, to root: Int) throws(CommError) -> Tensor? {
        guard let group else { return tensor }
        let sizes = shareSizes(of: total)
        let widest = sizes.max()!
        let rows = tensor.shape[0]
        let padded = Tensor(zeros: [rows, widest], dtype: .float32)
        for row in 0..<rows { padded.row(row, columns: 0..<sizes[rank]).copy(from: tensor.row(row)) }
        guard let gathered = try communication.measure({ () throws(CommError) in try group.gather(padded, destination: root) }) else { return nil }
        let result = Tensor(zeros: [rows, total], dtype: .float32)
        // The gather stacks the members' `[rows, widest]` slices: member m's row r is row m · rows + r.
        var column = 0
        for (member, width) in sizes.enumerated() {
            for row in 0..<rows {
                result.row(row, columns: column..<(column + width)).copy(from: gathered.row(member * rows + row, columns: 0..<width))
            }
            column += width
        }
        return result
    }
}

/// The six buffers of an encoded all-reduce (the encoded chunks out and in, this rank's encoded sum, the gathered
/// sums, and two fp32 chunks; the gathered form uses `mine`, `gathered` and `part` for whole tensors), kept for the
/// next call of the same chunking — a decode step repeats the last step's shape — instead of allocated on every
/// call. Used by one rank's model thread only.
private final class EncodedAllReduceBuffers: @unchecked Sendable {
    private var chunkBlocks = -1
    private(set) var outgoing = Tensor(zeros: [0], dtype: .int8)
    private(set) var incoming = Tensor(zeros: [0], dtype: .int8)
    private(set) var mine = Tensor(zeros: [0], dtype: .int8)
    private(set) var gathered = Tensor(zeros: [0], dtype: .int8)
    private(set) var sum = Tensor(zeros: [0], dtype: .float32)
    private(set) var part = Tensor(zeros: [0], dtype: .float32)

    /// The buffers for `ranks` chunks of `chunkBlocks` blocks each (reallocated only when that changes).
    func prepared(ranks: Int, chunkBlocks: Int, chunkValues: Int, chunkBytes: Int) -> EncodedAllReduceBuffers {
        guard chunkBlocks != self.chunkBlocks else { return self }
        self.chunkBlocks = chunkBlocks
        (outgoing, incoming, gathered) = (
            Tensor(zeros: [ranks * chunkBytes], dtype: .int8), Tensor(zeros: [ranks * chunkBytes], dtype: .int8),
            Tensor(zeros: [ranks * chunkBytes], dtype: .int8)
        )
        mine = Tensor(zeros: [chunkBytes], dtype: .int8)
        (sum, part) = (Tensor(zeros: [chunkValues], dtype: .float32), Tensor(zeros: [chunkValues], dtype: .float32))
        return self
    }
}
