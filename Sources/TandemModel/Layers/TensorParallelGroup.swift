import Dispatch
import TandemComm
import TandemTensor

/// Seconds a rank has spent in the tensor-parallel collectives (for `tandem bench generate`'s communication
/// share). Each rank's model runs on one thread, so no lock.
public final class CommunicationTime: @unchecked Sendable {
    public private(set) var seconds: Double = 0

    func measure<T>(_ body: () throws(CommError) -> T) throws(CommError) -> T {
        let start = DispatchTime.now().uptimeNanoseconds
        defer { seconds += Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 }
        return try body()
    }

    /// Starts counting from zero.
    public func reset() { seconds = 0 }
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

    /// One rank, no communication.
    public static let single = TensorParallelGroup(rank: 0, size: 1, group: nil)

    /// The tensor-parallel group `group` (every member holds one slice of each split weight).
    public init(_ group: ProcessGroup) {
        self.init(rank: group.rank, size: group.worldSize, group: group)
    }

    private init(rank: Int, size: Int, group: ProcessGroup?) {
        self.rank = rank
        self.size = size
        self.group = group
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

    /// Sums `tensor` over the group in place.
    func allReduce(_ tensor: Tensor) throws(CommError) {
        guard let group else { return }
        try communication.measure { () throws(CommError) in try group.allReduce(tensor) }
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
