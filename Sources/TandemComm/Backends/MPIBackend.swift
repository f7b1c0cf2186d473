#if MPI
import CMPI
import TandemTensor

/// The MPI backend (`TANDEM_BACKEND=mpi`, builds with the `MPI` trait): every collective is MPI's own, in its
/// nonblocking form (`MPI_Iallreduce`, `MPI_Ireduce_scatter`, `MPI_Iallgather` or, for unequal blocks,
/// `MPI_Iallgatherv`, `MPI_Ibcast`, `MPI_Igather`, `MPI_Iscatter`, `MPI_Ialltoall` or `MPI_Ialltoallv`,
/// `MPI_Ibarrier`), polled with `MPI_Test` against the operation's deadline and
/// the group's failure flag, so the failure model holds: a timeout names the operation, a peer's death (seen
/// by the group's TCP liveness connections, which every group keeps) ends the wait at once, and MPI's errors
/// return (`MPI_ERRORS_RETURN`) as `CommError`s instead of aborting the job. With `MPIWait.blocking`
/// (`TANDEM_MPI_WAIT=blocking`) it calls the blocking forms instead: faster in OpenMPI, whose nonblocking
/// collectives are a separate, slower implementation, but nothing then ends a call early.
///
/// The communicator holds the group's members in rank order (`MPI_Comm_create_group` over `MPI_COMM_WORLD`,
/// collective over the members only, so a sub-group never involves outsiders). Point-to-point messages go
/// through `MPITransport`, header first, so mismatched sizes and orders are caught as on the other backends.
///
/// What MPI cannot do, and what happens instead: it does not compare the sizes ranks pass to one collective
/// (mismatched sizes may hang, truncate or fail inside MPI; the deadline always ends the wait); it cannot
/// cancel a collective, so after a timeout MPI may still write into that operation's tensors later — the group
/// is broken, and a process should keep those tensors alive or exit, as `tandem` does; and its floating-point
/// reductions follow MPI's algorithm, so ranks need not agree to the last bit (the other backends guarantee it).
final class MPIBackend: CommBackend, @unchecked Sendable {
    let kind = GroupBackend.mpi
    let transport: any MessageTransport
    /// The members' ranks in `MPI_COMM_WORLD`, by rank in this group.
    let worldRanks: [Int]
    private var communicator: MPI_Comm?
    private let wait: SpinWait
    /// `MPIWait.blocking`: MPI's blocking collectives instead of polled nonblocking ones.
    private let blocking: Bool

    /// Creates the communicator of `worldRanks` (every member calls this with the same list and `tag`).
    init(worldRanks: [Int], tag: Int32, group: String, health: GroupHealth, rootRanks: [Int], wait mode: MPIWait) throws(CommError) {
        self.worldRanks = worldRanks
        blocking = mode == .blocking
        // MPI progresses a nonblocking operation only inside MPI calls on this rank: the wait keeps calling
        // MPI_Test (yielding between calls) and never sleeps, as MPI's own blocking calls poll.
        wait = SpinWait(health: health, rootRanks: rootRanks, yieldNanoseconds: .max)
        var world = tandem_mpi_group_null()
        var members = tandem_mpi_group_null()
        var created = tandem_mpi_comm_null()
        var ranks = worldRanks.map { Int32($0) }
        try MPIRuntime.check(MPI_Comm_group(tandem_mpi_comm_world(), &world), group: group, operation: "MPI_Comm_group")
        defer { MPI_Group_free(&world) }
        try MPIRuntime.check(MPI_Group_incl(world, Int32(ranks.count), &ranks, &members), group: group, operation: "MPI_Group_incl")
        defer { MPI_Group_free(&members) }
        try MPIRuntime.check(
            MPI_Comm_create_group(tandem_mpi_comm_world(), members, tag, &created), group: group, operation: "MPI_Comm_create_group")
        try MPIRuntime.check(MPI_Comm_set_errhandler(created, tandem_mpi_errors_return()), group: group, operation: "MPI_Comm_set_errhandler")
        communicator = created
        transport = MPITransport(communicator: created, wait: wait)
    }

    deinit {
        if !MPIRuntime.isFinalized { MPI_Comm_free(&communicator) }
    }

    // MARK: collectives

    func allReduce(_ buffer: UnsafeMutableRawPointer, op: ReduceOp, _ step: Collective) throws(CommError) {
        let count = try step.int32(step.count, "elements")
        let (datatype, operation) = MPIReductions.of(step.dtype, op)
        try run(step, "allreduce") {
            MPI_Allreduce(tandem_mpi_in_place(), buffer, count, datatype, operation, communicator)
        } nonblocking: { request in
            MPI_Iallreduce(tandem_mpi_in_place(), buffer, count, datatype, operation, communicator, &request)
        }
    }

    func reduceScatter(
        _ source: UnsafeMutableRawPointer, blocks: [Range<Int>], op: ReduceOp, into output: UnsafeMutableRawPointer, _ step: Collective
    ) throws(CommError) {
        let counts = pinned(try blocks.map { (block) throws(CommError) in try step.int32(block.count, "elements per rank") })
        let (datatype, operation) = MPIReductions.of(step.dtype, op)
        let start = source + (blocks.first?.lowerBound ?? 0) * step.elementBytes
        try run(step, "reduce_scatter") {
            MPI_Reduce_scatter(start, output, counts, datatype, operation, communicator)
        } nonblocking: { request in
            MPI_Ireduce_scatter(start, output, counts, datatype, operation, communicator, &request)
        }
        counts.deallocate()
    }

    func allGather(_ input: UnsafeRawPointer, into output: UnsafeMutableRawPointer, blocks: [Range<Int>], _ step: Collective) throws(CommError) {
        let own = blocks[step.rank]
        let source = input == UnsafeRawPointer(output + own.lowerBound) ? UnsafeRawPointer(tandem_mpi_in_place()) : input
        if let size = Self.uniformSize(blocks) {
            let count = try step.int32(size, "bytes per rank")
            try run(step, "allgather") {
                MPI_Allgather(source, count, tandem_mpi_byte(), output, count, tandem_mpi_byte(), communicator)
            } nonblocking: { request in
                MPI_Iallgather(source, count, tandem_mpi_byte(), output, count, tandem_mpi_byte(), communicator, &request)
            }
            return
        }
        let counts = pinned(try blocks.map { (block) throws(CommError) in try step.int32(block.count, "bytes per rank") })
        let offsets = pinned(try blocks.map { (block) throws(CommError) in try step.int32(block.lowerBound, "bytes") })
        try run(step, "allgatherv") {
            MPI_Allgatherv(source, counts[step.rank], tandem_mpi_byte(), output, counts, offsets, tandem_mpi_byte(), communicator)
        } nonblocking: { request in
            MPI_Iallgatherv(source, counts[step.rank], tandem_mpi_byte(), output, counts, offsets, tandem_mpi_byte(), communicator, &request)
        }
        counts.deallocate()
        offsets.deallocate()
    }

    func broadcast(_ buffer: UnsafeMutableRawPointer, bytes: Int, root: Int, _ step: Collective) throws(CommError) {
        let count = try step.int32(bytes, "bytes")
        try run(step, "bcast") {
            MPI_Bcast(buffer, count, tandem_mpi_byte(), Int32(root), communicator)
        } nonblocking: { request in
            MPI_Ibcast(buffer, count, tandem_mpi_byte(), Int32(root), communicator, &request)
        }
    }

    func gather(_ input: UnsafeRawPointer, blockBytes: Int, into output: UnsafeMutableRawPointer?, root: Int, _ step: Collective) throws(CommError) {
        let count = try step.int32(blockBytes, "bytes per rank")
        try run(step, "gather") {
            MPI_Gather(input, count, tandem_mpi_byte(), output, count, tandem_mpi_byte(), Int32(root), communicator)
        } nonblocking: { request in
            MPI_Igather(input, count, tandem_mpi_byte(), output, count, tandem_mpi_byte(), Int32(root), communicator, &request)
        }
    }

    func scatter(_ input: UnsafeRawPointer?, blockBytes: Int, into output: UnsafeMutableRawPointer, root: Int, _ step: Collective) throws(CommError) {
        let count = try step.int32(blockBytes, "bytes per rank")
        try run(step, "scatter") {
            MPI_Scatter(input, count, tandem_mpi_byte(), output, count, tandem_mpi_byte(), Int32(root), communicator)
        } nonblocking: { request in
            MPI_Iscatter(input, count, tandem_mpi_byte(), output, count, tandem_mpi_byte(), Int32(root), communicator, &request)
        }
    }

    func allToAll(
        _ input: UnsafeRawPointer, sendBlocks: [Range<Int>], into output: UnsafeMutableRawPointer, receiveBlocks: [Range<Int>],
        _ step: Collective
    ) throws(CommError) {
        if let size = Self.uniformSize(sendBlocks), Self.uniformSize(receiveBlocks) == size {
            let count = try step.int32(size, "bytes per rank")
            try run(step, "alltoall") {
                MPI_Alltoall(input, count, tandem_mpi_byte(), output, count, tandem_mpi_byte(), communicator)
            } nonblocking: { request in
                MPI_Ialltoall(input, count, tandem_mpi_byte(), output, count, tandem_mpi_byte(), communicator, &request)
            }
            return
        }
        let sendCounts = pinned(try sendBlocks.map { (block) throws(CommError) in try step.int32(block.count, "bytes per rank") })
        let sendOffsets = pinned(try sendBlocks.map { (block) throws(CommError) in try step.int32(block.lowerBound, "bytes") })
        let receiveCounts = pinned(try receiveBlocks.map { (block) throws(CommError) in try step.int32(block.count, "bytes per rank") })
        let receiveOffsets = pinned(try receiveBlocks.map { (block) throws(CommError) in try step.int32(block.lowerBound, "bytes") })
        try run(step, "alltoallv") {
            MPI_Alltoallv(input, sendCounts, sendOffsets, tandem_mpi_byte(), output, receiveCounts, receiveOffsets, tandem_mpi_byte(), communicator)
        } nonblocking: { request in
            MPI_Ialltoallv(
                input, sendCounts, sendOffsets, tandem_mpi_byte(), output, receiveCounts, receiveOffsets, tandem_mpi_byte(), communicator, &request)
        }
        for array in [sendCounts, sendOffsets, receiveCounts, receiveOffsets] { array.deallocate() }
    }

    func barrier(_ step: Collective) throws(CommError) {
        try run(step, "barrier") { MPI_Barrier(communicator) } nonblocking: { request in MPI_Ibarrier(communicator, &request) }
    }

    func algorithmName(_ operation: OperationKind, bytes: Int, worldSize: Int) -> String {
        operation == .send ? "mpi_isend" : "mpi"
    }

    /// The common size of `blocks` when they are equal and laid end to end from 0 — what `MPI_Allgather` and
    /// `MPI_Alltoall` take, without the count and displacement arrays of their v-forms (which OpenMPI runs slower
    /// at small sizes) — else nil.
    private static func uniformSize(_ blocks: [Range<Int>]) -> Int? {
        guard let size = blocks.first?.count else { return nil }
        for (index, block) in blocks.enumerated() where block.count != size || block.lowerBound != index * size { return nil }
        return size
    }

    /// `values` in memory of its own: MPI reads a nonblocking collective's count and displacement arrays until the
    /// operation completes, while an array passed with `&` is only guaranteed for the call. The caller frees it
    /// after the operation succeeded; after a failure it stays allocated, since MPI may still read it.
    private func pinned(_ values: [Int32]) -> UnsafeMutablePointer<Int32> {
        let pointer = UnsafeMutablePointer<Int32>.allocate(capacity: max(values.count, 1))
        pointer.initialize(from: values, count: values.count)
        return pointer
    }

    /// Runs one collective, `MPI_<name>` or `MPI_I<name>`: blocking in MPI's call (`MPIWait.blocking`), or
    /// nonblocking and polled to completion by the operation's deadline, ended at once by the group's failure. A
    /// request still pending when the wait fails is left to MPI (it cannot be cancelled).
    private func run(
        _ step: Collective, _ collective: String, blocking call: () -> Int32, nonblocking start: (inout MPI_Request?) -> Int32
    ) throws(CommError) {
        if blocking {
            try wait.health.check()
            try check(call(), step, "MPI_" + collective.prefix(1).uppercased() + collective.dropFirst())
            return
        }
        var request = tandem_mpi_request_null()
        try MPIRuntime.check(start(&request), group: step.context.group, operation: "MPI_I" + collective)
        var failure: Int32 = 0
        try wait.until(step.context, silent: { (0..<step.worldSize).filter { $0 != step.rank } }, departureGrace: MPIRuntime.departureGrace) {
            var done: Int32 = 0
            let code = MPI_Test(&request, &done, tandem_mpi_status_ignore())
            if code != 0 { failure = code }
            return done != 0 || code != 0
        }
        try check(failure, step, "MPI_I" + collective)
    }

    /// MPI does not compare the sizes ranks pass: a disagreement surfaces as its own error, so the error says so.
    @inline(__always)
    private func check(_ code: Int32, _ step: Collective, _ name: @autoclosure () -> String) throws(CommError) {
        try MPIRuntime.check(
            code, group: step.context.group,
            operation: "\(name()) (\(step.context.operation) #\(step.context.sequence), \(step.count) \(step.dtype) elements here; MPI does "
                + "not check that every rank passed the same size)")
    }
}

extension Collective {
    /// `value` as MPI's 32-bit count, or an error naming the limit.
    fileprivate func int32(_ value: Int, _ unit: String) throws(CommError) -> Int32 {
        try MPIRuntime.count(value, unit, context)
    }
}

/// The MPI datatype and operation of each Tandem dtype and reduction. MPI has no 16-bit floats: bf16 and fp16
/// travel as `MPI_UINT16_T` under user-defined operations that combine them as Tandem does (`Reduction.combine`).
enum MPIReductions {
    static func of(_ dtype: DType, _ op: ReduceOp) -> (MPI_Datatype?, MPI_Op?) {
        switch dtype {
        case .float32: (tandem_mpi_float(), builtin(op))
        case .int8: (tandem_mpi_int8(), builtin(op))
        case .int32: (tandem_mpi_int32(), builtin(op))
        case .int64: (tandem_mpi_int64(), builtin(op))
        case .bfloat16: (tandem_mpi_uint16(), halves.bfloat16[index(op)])
        case .float16: (tandem_mpi_uint16(), halves.float16[index(op)])
        }
    }

    private static func builtin(_ op: ReduceOp) -> MPI_Op? {
        switch op {
        case .sum, .avg: tandem_mpi_sum()
        case .min: tandem_mpi_min()
        case .max: tandem_mpi_max()
        case .product: tandem_mpi_prod()
        }
    }

    private static func index(_ op: ReduceOp) -> Int {
        switch op {
        case .sum, .avg: 0
        case .min: 1
        case .max: 2
        case .product: 3
        }
    }

    /// The user-defined operations, created once (after `MPI_Init`); sum, min, max, product.
    nonisolated(unsafe) private static let halves: (bfloat16: [MPI_Op?], float16: [MPI_Op?]) = {
        // A C function pointer must be written as a literal closure, one per (operation, dtype).
        var ops = [MPI_Op?](repeating: tandem_mpi_op_null(), count: 8)
        _ = MPI_Op_create({ a, b, n, _ in combine(.sum, .bfloat16, a, b, n) }, 1, &ops[0])
        _ = MPI_Op_create({ a, b, n, _ in combine(.min, .bfloat16, a, b, n) }, 1, &ops[1])
        _ = MPI_Op_create({ a, b, n, _ in combine(.max, .bfloat16, a, b, n) }, 1, &ops[2])
        _ = MPI_Op_create({ a, b, n, _ in combine(.product, .bfloat16, a, b, n) }, 1, &ops[3])
        _ = MPI_Op_create({ a, b, n, _ in combine(.sum, .float16, a, b, n) }, 1, &ops[4])
        _ = MPI_Op_create({ a, b, n, _ in combine(.min, .float16, a, b, n) }, 1, &ops[5])
        _ = MPI_Op_create({ a, b, n, _ in combine(.max, .float16, a, b, n) }, 1, &ops[6])
        _ = MPI_Op_create({ a, b, n, _ in combine(.product, .float16, a, b, n) }, 1, &ops[7])
        return (Array(ops[0..<4]), Array(ops[4..<8]))
    }()

    /// MPI's `inoutvec = invec ⊕ inoutvec`.
    private static func combine(
        _ op: ReduceOp, _ dtype: DType, _ input: UnsafeMutableRawPointer?, _ accumulator: UnsafeMutableRawPointer?,
        _ length: UnsafeMutablePointer<Int32>?
    ) {
        guard let input, let accumulator, let length else { return }
        Reduction.combine(op, dtype: dtype, into: accumulator, from: input, count: Int(length.pointee))
    }
}
#endif
