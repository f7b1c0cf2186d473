import Synchronization
import TandemTensor

/// A group of ranks that run collectives together — Tandem's `torch.distributed` process group.
///
/// Every rank creates the group with the same name, world size and store. Operations are synchronous (they
/// block the calling thread, like Gloo); the `…Async` variants return a `Work`. All ranks must issue the same
/// collectives in the same order with matching sizes and dtypes; a disagreement is reported as
/// `CommError.mismatch` on the ranks that see it and `peerAborted` on the others, never a hang.
///
/// Failure model: every operation has a deadline (`ProcessGroupOptions.timeout`); a peer that dies is noticed
/// within milliseconds through a dedicated liveness connection; after any error the group is broken and
/// every later call throws that error at once. `shutdown()` never blocks on peers.
public final class ProcessGroup: @unchecked Sendable {
    /// The group's name (`world`, `tp` …), used in store keys and error messages.
    public let name: String
    /// This process's rank in the group.
    public let rank: Int
    /// The number of ranks.
    public let worldSize: Int
    /// Deadline of each operation, in seconds.
    public let timeout: Double
    /// The store the group was set up through.
    public let store: any Store

    /// How this group moves data, chosen at creation (`ProcessGroupOptions.backend`, `TANDEM_BACKEND`).
    public var backend: GroupBackend { dataPlane?.kind ?? .none }
    /// The rank in the root group (usually `world`) of each member, by rank in this group; `0..<worldSize` for a
    /// group created directly.
    public internal(set) var globalRanks: [Int]
    /// The rank of each member in the root group that owns the connections, monitor and memory this group
    /// uses (itself, unless it was split from another).
    let rootRanks: [Int]

    let options: ProcessGroupOptions
    let health: GroupHealth
    /// The group's TCP connections: a TCP group's transport, what sub-groups are carved from, and what a root
    /// group shuts down. Nil for one rank.
    let connections: TCPTransport?
    /// The backend that moves this group's data (TCP, shared memory, hierarchical or MPI); nil for one rank.
    private(set) var dataPlane: (any CommBackend)?
    /// The group's shared memory when it runs over it.
    var shared: ShmMemory? { (dataPlane as? SharedMemoryBackend)?.memory }
    private let monitor: LivenessMonitor?
    private let executor: GroupExecutor
    /// The group this one was split from, kept alive (it owns the connections, memory and monitor); nil for a
    /// root group and for a hierarchy's own sub-groups, which their parent holds.
    private let parent: ProcessGroup?
    /// Whether this group was carved from another (its shutdown then closes only itself).
    private let isCarved: Bool
    /// Set by `shutdown()` of a split sub-group, which leaves the shared state alone.
    private let closed = Atomic<Bool>(false)
    private let groupIdentifier: UInt32
    /// `split` calls so far (the same on every rank).
    private let splits = Atomic<Int>(0)
    /// Collective sequence number, shared by all ranks; guarded by the executor (one operation at a time).
    private var sequence: UInt64 = 0
    /// Point-to-point sequence numbers per peer, guarded likewise.
    private var sendSequence: [UInt64]
    private var receiveSequence: [UInt64]

    /// Creates the group: rendezvous through `store`, then a TCP connection pair to every peer.
    ///
    /// - Parameters:
    ///   - store: the job's store (shared by all ranks).
    ///   - rank: this rank, in `0..<worldSize`.
    ///   - worldSize: the number of ranks, ≥ 1.
    ///   - name: the group's name; groups with different names are independent.
    ///   - options: timeout, token and transport settings.
    /// - Throws: `CommError.invalidArgument` for a bad rank or size, `.bootstrap` when peers cannot be
    ///   reached in time (naming them and the addresses tried).
    public init(
        store: any Store, rank: Int, worldSize: Int, name: String = "world", options: ProcessGroupOptions
    ) throws(CommError) {
        guard worldSize >= 1 else {
            throw .invalidArgument(group: name, operation: "init", detail: "world size must be ≥ 1, got \(worldSize)")
        }
        guard (0..<worldSize).contains(rank) else {
            throw .invalidArgument(group: name, operation: "init", detail: "rank \(rank) is outside 0..<\(worldSize)")
        }
        guard options.timeout > 0 else {
            throw .invalidArgument(group: name, operation: "init", detail: "timeout must be positive, got \(options.timeout)")
        }
        guard (1...16).contains(options.socketsPerPeer) else {
            throw .invalidArgument(group: name, operation: "init", detail: "sockets per peer must be 1…16, got \(options.socketsPerPeer)")
        }
        self.name = name
        self.rank = rank
        self.worldSize = worldSize
        self.timeout = options.timeout
        self.store = store
        self.options = options
        globalRanks = Array(0..<worldSize)
        rootRanks = Array(0..<worldSize)
        parent = nil
        isCarved = false
        groupIdentifier = WireHeader.groupIdentifier(name)
        sendSequence = Array(repeating: 0, count: worldSize)
        receiveSequence = Array(repeating: 0, count: worldSize)
        executor = GroupExecutor(name: name)
        do {
            health = try GroupHealth()
        } catch {
            throw .bootstrap(group: name, detail: "\(error)")
        }
        if worldSize == 1 {
            connections = nil
            monitor = nil
            return
        }
        guard let token = options.token, !token.isEmpty else {
            throw .bootstrap(
                group: name,
                detail: "no job token: start the ranks with `tandem launch`, or give every rank the same \(TandemEnvironment.jobToken.name)")
        }
        let deadline = Deadline.after(seconds: options.timeout)
        let scoped: PrefixStore
        let generation: Int64
        do {
            generation = try store.add("tandem/group/\(name)/generation/\(rank)", 1)
            scoped = PrefixStore(prefix: "tandem/group/\(name)/\(generation)", base: store)
        } catch {
            throw .bootstrap(group: name, detail: "store: \(error)")
        }
        let host = options.listenHost ?? (store as? TCPStore)?.localHost ?? "127.0.0.1"
        let mesh = try TCPMesh.connect(
            group: name, rank: rank, worldSize: worldSize, store: scoped, token: token, listenHost: host, streams: options.socketsPerPeer, deadline: deadline,
            peerTimeout: options.peerTimeout, abandoned: options.setupAbandoned)
        let tcp = TCPTransport(
            group: name, rank: rank, worldSize: worldSize, sockets: mesh.data, rootRanks: rootRanks, health: health,
            spinNanoseconds: UInt64(max(options.spinMicroseconds, 0) * 1000))
        connections = tcp
        dataPlane = TCPBackend(connections: tcp, allReduceAlgorithm: options.allReduceAlgorithm)
        do {
            monitor = try LivenessMonitor(group: name, rank: rank, sockets: mesh.liveness, health: health)
        } catch {
            throw .bootstrap(group: name, detail: "\(error)")
        }
        switch options.backend {
        case .tcp: break
        case .mpi: try setUpMPI(scope: scoped.fullPrefix)
        case .auto, .shm, .hier: try chooseDataPlane(token: token, scope: scoped.fullPrefix)
        }
        // The setup's own collectives are not the user's: numbering starts afresh (equal on every rank).
        sequence = 0
        Log.info("group '\(name)' rank \(rank) of \(worldSize): backend \(backend)")
    }

    /// A sub-group carved from `parent`'s connections and shared memory (the split path of `split`): no
    /// rendezvous, no new connection; it shares the parent's executor (operations on groups that share
    /// connections run one at a time, in issue order) and its failure state (a failure in any of them breaks
    /// all: a stream that lost step on one group cannot be trusted by the others).
    ///
    /// - Parameter keepsParent: false for a hierarchy's own sub-groups (their parent holds them; a reference back
    ///   would keep both alive forever).
    init(
        carvedFrom parent: ProcessGroup, ranksInParent members: [Int], name: String, listHash: UInt64, keepsParent: Bool = true
    ) throws(CommError) {
        self.name = name
        rank = members.firstIndex(of: parent.rank)!
        worldSize = members.count
        timeout = parent.timeout
        store = parent.store
        options = parent.options
        health = parent.health
        executor = parent.executor
        monitor = parent.monitor
        self.parent = keepsParent ? parent : nil
        isCarved = true
        globalRanks = members.map { parent.globalRanks[$0] }
        rootRanks = members.map { parent.rootRanks[$0] }
        groupIdentifier = WireHeader.groupIdentifier(name)
        sendSequence = Array(repeating: 0, count: members.count)
        receiveSequence = Array(repeating: 0, count: members.count)
        guard members.count > 1, let parentConnections = parent.connections else {
            connections = nil
            return
        }
        let tcp = TCPTransport(
            group: name, rank: rank, worldSize: worldSize, sockets: members.map { parentConnections.sockets[$0] },
            rootRanks: rootRanks, health: health,
            spinNanoseconds: UInt64(max(options.spinMicroseconds, 0) * 1000))
        connections = tcp
        dataPlane = TCPBackend(connections: tcp, allReduceAlgorithm: options.allReduceAlgorithm)
        // One small all-gather over the carved connections: the members agree on the group list and on a
        // shared-memory region.
        let agreed = try allGatherObject([listHash, parent.shared?.pool.freeRegions ?? 0])
        if let other = agreed.firstIndex(where: { $0[0] != listHash }) {
            throw .bootstrap(group: name, detail: "rank \(globalRanks[other]) split with a different list of groups than rank \(globalRanks[rank])")
        }
        try carveMPI(from: parent, members: members, listHash: listHash)
        if let parentMemory = parent.shared, options.backend != .tcp,
            let memory = try carveSharedMemory(from: parentMemory, ranksInParent: members, freeRegions: agreed.map { $0[1] })
        {
            useSharedMemory(memory)
        }
        sequence = 0
        Log.info("group '\(name)' rank \(rank) of \(worldSize) (split from '\(parent.name)'): backend \(backend)")
    }

    deinit { shutdown() }

    /// Whether an error has broken the group (or it was shut down).
    public var isBroken: Bool { failure != nil }

    /// The error that broke the group, if any.
    public var failure: CommError? {
        closed.load(ordering: .acquiring) ? .shutDown(group: name) : health.error
    }

    /// Shuts the group down: pending and later operations throw `shutDown`, peers are told this rank left
    /// cleanly, connections close. Never blocks on peers; idempotent. A split sub-group only closes itself:
    /// the connections and memory it shares stay with its parent.
    public func shutdown() {
        let wasClosed = closed.exchange(true, ordering: .acquiringAndReleasing)
        guard !isCarved else {
            if !wasClosed, let shared, shared.region != 0 { shared.pool.release(shared.region) }
            return
        }
        // A rank leaving a group that already failed is not a clean exit: its peers hear the failure (as an abort)
        // rather than a goodbye, so one still waiting on its data reports why instead of "shut down early".
        let earlier = health.error
        health.fail(.shutDown(group: name))
        executor.stop()
        if let earlier, !wasClosed {
            monitor?.broadcastAbort(earlier)
            monitor?.stop(sayGoodbye: false)
        } else {
            monitor?.stop(sayGoodbye: true)
        }
        connections?.shutdownConnections()
    }

    // MARK: - Running operations

    /// Runs one collective: waits its turn, checks the group is healthy, assigns the next sequence number,
    /// and on failure breaks the group and tells the peers.
    ///
    /// - Parameter isPointToPoint: send/recv leave the collective sequence number alone (see `OperationPlan`).
    func run<Result>(
        _ operation: OperationKind, dtype: DType, count: Int, tag: Int32 = 0, isPointToPoint: Bool = false,
        _ body: (Collective) throws(CommError) -> Result
    ) throws(CommError) -> Result {
        try executor.runInline { () throws(CommError) -> Result in
            try execute(operation, dtype: dtype, count: count, tag: tag, isPointToPoint: isPointToPoint, body)
        }
    }

    /// Queues one collective for the communication thread; see `run`.
    func submit(
        _ operation: OperationKind, dtype: DType, count: Int, tag: Int32 = 0, isPointToPoint: Bool = false,
        _ body: @escaping (Collective) throws(CommError) -> Void
    ) -> Work {
        let work = Work()
        executor.submit { [self] in
            do throws(CommError) {
                try execute(operation, dtype: dtype, count: count, tag: tag, isPointToPoint: isPointToPoint, body)
                work.complete(.success(()))
            } catch {
                work.complete(.failure(error))
            }
        }
        return work
    }

    /// The sequence number of the next point-to-point message to (`sending`) or from `peer`; call only from
    /// an operation's body, which runs in the executor's turn.
    func nextPointToPointSequence(peer: Int, sending: Bool) -> UInt64 {
        if sending {
            sendSequence[peer] += 1
            return sendSequence[peer]
        }
        receiveSequence[peer] += 1
        return receiveSequence[peer]
    }

    private func execute<Result>(
        _ operation: OperationKind, dtype: DType, count: Int, tag: Int32, isPointToPoint: Bool,
        _ body: (Collective) throws(CommError) -> Result
    ) throws(CommError) -> Result {
        if closed.load(ordering: .acquiring) { throw .shutDown(group: name) }
        try health.check()
        var number: UInt64 = 0
        if !isPointToPoint {
            sequence += 1
            number = sequence
        }
        let context = OperationContext(
            group: name, groupIdentifier: groupIdentifier, operation: operation, sequence: number, deadline: .after(seconds: timeout), timeoutSeconds: timeout)
        do {
            return try body(Collective(backend: dataPlane, rank: rank, worldSize: worldSize, context: context, dtype: dtype, tag: tag, count: count))
        } catch {
            breakGroup(error)
            throw health.error ?? error
        }
    }

    /// Moves this group onto `backend` (chosen once its TCP connections are up).
    func use(_ backend: any CommBackend) {
        dataPlane = backend
    }

    /// Moves this group onto `memory` (its ranks share a host).
    func useSharedMemory(_ memory: ShmMemory) {
        use(SharedMemoryBackend(memory: memory, allReduceAlgorithm: options.allReduceAlgorithm))
    }

    /// Runs a step of a hierarchical operation on this sub-group, from inside the parent's operation (whose
    /// executor turn the caller holds). The step speaks in the parent's terms: its headers carry the parent's
    /// operation and sequence number (with this sub-group's id, so the wire streams stay apart), it shares the
    /// parent's deadline, and its errors name the parent group and the parent's ranks (`ranksInParent`).
    func nested<Result>(
        within parent: OperationContext, ranksInParent: [Int], dtype: DType, count: Int,
        _ body: (Collective) throws(CommError) -> Result
    ) throws(CommError) -> Result {
        var context = parent
        context.groupIdentifier = groupIdentifier
        let step = Collective(backend: dataPlane, rank: rank, worldSize: worldSize, context: context, dtype: dtype, tag: 0, count: count)
        do {
            return try body(step)
        } catch {
            switch error {
            case let .timeout(_, operation, sequence, waitingFor, seconds):
                throw .timeout(
                    group: parent.group, operation: operation, sequence: sequence, waitingFor: waitingFor.map { ranksInParent[$0] },
                    seconds: seconds)
            case let .mismatch(_, peer, expected, received):
                throw .mismatch(group: parent.group, peer: ranksInParent[peer], expected: expected, received: received)
            default:
                throw error
            }
        }
    }

    /// Numbers `split` calls: 1, 2, … on every rank alike, since all ranks split in the same order.
    func nextSplitNumber() -> Int {
        splits.wrappingAdd(1, ordering: .relaxed).newValue
    }

    /// Records `error` as the group's failure and, when this rank is its origin, tells every peer.
    private func breakGroup(_ error: CommError) {
        guard health.fail(error) else { return }
        if backend == .mpi { noteMPIFailure() }
        Log.debug("group '\(name)' rank \(rank): \(error)")
        if case .peerAborted = error { return }
        monitor?.broadcastAbort(error)
    }

    /// Validates an argument; a failure breaks the group like any other error, so peers do not wait on a
    /// rank that will never send.
    func require(_ condition: Bool, _ operation: OperationKind, _ detail: @autoclosure () -> String) throws(CommError) {
        guard !condition else { return }
        throw invalid(operation, detail())
    }

    /// Breaks the group with an invalid-argument error and returns it for the caller to throw.
    func invalid(_ operation: OperationKind, _ detail: String) -> CommError {
        let error = CommError.invalidArgument(group: name, operation: operation.description, detail: detail)
        breakGroup(error)
        return error
    }
}

extension ProcessGroup {
    /// The all-reduce algorithm this group uses for a message of `bytes`.
    public func allReduceAlgorithm(bytes: Int) -> AllReduceAlgorithm {
        options.allReduceAlgorithm.resolved(bytes: bytes, worldSize: worldSize)
    }

    /// The shared-memory all-reduce algorithm for a message of `bytes` (used when the backend is shared memory).
    public func sharedAllReduceAlgorithm(bytes: Int) -> SharedAllReduceAlgorithm {
        options.allReduceAlgorithm.resolvedShared(bytes: bytes, worldSize: worldSize)
    }

    /// The name of the algorithm `operation` uses for a message of `bytes` (for benchmarks and logs): over TCP
    /// the all-reduce and reduce-scatter choices above, `direct`/`recursive_doubling`/`ring` for all-gather,
    /// `tree`/`chain` for broadcast, `direct` for the rest; over shared memory `one_shot`/`two_shot` for
    /// all-reduce, `mailbox` for point-to-point and all-to-all, `exchange` for the rest; `hierarchical` for the
    /// composed collectives of a group spanning hosts.
    public func algorithmName(_ operation: OperationKind, bytes: Int) -> String {
        dataPlane?.algorithmName(operation, bytes: bytes, worldSize: worldSize)
            ?? TCPBackend.algorithmName(operation, bytes: bytes, worldSize: worldSize, allReduce: options.allReduceAlgorithm)
    }

    /// The reduce-scatter algorithm this group uses for an input of `bytes`.
    public func reduceScatterAlgorithm(bytes: Int) -> ReduceScatterAlgorithm {
        ReduceScatterAlgorithm.choose(bytes: bytes, worldSize: worldSize, allReduce: options.allReduceAlgorithm)
    }
}
