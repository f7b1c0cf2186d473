import TandemComm
import TandemModel
import TandemParallel
import TandemTensor

/// The process groups one engine replica runs over — its tp × pp ranks in vLLM's layout (`ParallelLayout`):
/// all of them (plans, agreement, outputs), this rank's tensor-parallel group (the layers' collectives) and, with
/// pp > 1, this rank's links to the neighbouring stages. With data parallelism the launched world holds dp such
/// replicas (replica d is ranks d·pp·tp ..< (d + 1)·pp·tp) and `all` is that whole world. Every rank of the world
/// creates it together.
public final class ReplicaGroups: Sendable {
    /// The replica's layout (tp × pp; dp is 1 within a replica).
    public let layout: ParallelLayout
    /// Every rank of the replica; nil for one rank.
    public let world: ProcessGroup?
    /// Every rank of every replica (the launched world); nil for one rank. The same group as `world` with one
    /// replica.
    public let all: ProcessGroup?
    /// Replicas in `all` (data-parallel size).
    public let replicaCount: Int
    /// This rank's replica (its data-parallel index).
    public let replica: Int
    /// This rank's tensor-parallel group.
    public let tensor: TensorParallelGroup
    /// This rank's pipeline stage.
    public let stage: Int
    /// With expert parallelism across replicas: the stage's dp × tp ranks and this tp index's replicas.
    public let experts: ExpertGroups?
    /// The point-to-point links of this rank's stage; nil with one stage.
    let links: StageLinks?
    /// The replica's group when it was split from `all` (closed with the replica).
    private let splitReplica: ProcessGroup?

    /// One rank: no communication.
    public static var single: ReplicaGroups { ReplicaGroups(tensor: .single) }

    /// Tensor parallelism only: the tensor-parallel group is the whole replica.
    public init(tensor: TensorParallelGroup) {
        layout = try! ParallelLayout(worldSize: tensor.size, tensorParallelSize: tensor.size)
        world = tensor.group
        all = tensor.group
        (replicaCount, replica, splitReplica) = (1, 0, nil)
        self.tensor = tensor
        stage = 0
        links = nil
        experts = nil
    }

    /// Lays `world` out as `dataParallelSize` replicas of `pipelineParallelSize` stages of
    /// `world.worldSize / (pipelineParallelSize · dataParallelSize)` tensor-parallel ranks (vLLM's order: tp ranks
    /// consecutive, then stages, then replicas) and creates this rank's groups (collective: every rank of `world`
    /// calls it).
    ///
    /// - Parameter expertDispatch: set when expert parallelism spans the replicas (dp > 1): the MoE layers' groups
    ///   are made, over the stage's dp × tp ranks.
    /// - Throws: `ParallelConfigError` when stages × replicas do not divide the world, `CommError` when a group
    ///   cannot be set up.
    /// - Parameter activationSync: how the tensor-parallel all-reduces and the stages' hidden states carry values.
    public init(
        world: ProcessGroup, pipelineParallelSize: Int, dataParallelSize: Int = 1, expertDispatch: ExpertDispatch? = nil,
        activationSync: ActivationSync = .float32
    ) throws {
        for (name, value) in [("pipelineParallelSize", pipelineParallelSize), ("dataParallelSize", dataParallelSize)] where value < 1 {
            throw ParallelConfigError.nonPositive(name: name, value: value)
        }
        let replicaSize = world.worldSize / (pipelineParallelSize * dataParallelSize)
        guard replicaSize >= 1, world.worldSize % (pipelineParallelSize * dataParallelSize) == 0 else {
            throw ParallelConfigError.productMismatch(
                worldSize: world.worldSize, tensor: max(replicaSize, 1), pipeline: pipelineParallelSize, data: dataParallelSize)
        }
        let full = try ParallelLayout(
            worldSize: world.worldSize, tensorParallelSize: replicaSize, pipelineParallelSize: pipelineParallelSize,
            dataParallelSize: dataParallelSize)
        all = world
        if let expertDispatch, dataParallelSize > 1 {
            experts = ExpertGroups(
                expert: try world.split(full.groups(.expert), name: "ep")!, replicas: try world.split(full.groups(.data), name: "ep-replicas")!,
                dispatch: expertDispatch)
        } else {
            experts = nil
        }
        replicaCount = dataParallelSize
        replica = full.coordinates(of: world.rank).data
        let replicaWorld = dataParallelSize == 1
            ? world
            : try world.split(
                (0..<dataParallelSize).map { d in Array((d * replicaSize * pipelineParallelSize)..<((d + 1) * replicaSize * pipelineParallelSize)) },
                name: "dp-replica")!
        splitReplica = dataParallelSize == 1 ? nil : replicaWorld
        let layout = try ParallelLayout(
            worldSize: replicaWorld.worldSize, tensorParallelSize: replicaSize, pipelineParallelSize: pipelineParallelSize)
        self.layout = layout
        self.world = replicaWorld.worldSize > 1 ? replicaWorld : nil
        stage = layout.coordinates(of: replicaWorld.rank).stage
        guard pipelineParallelSize > 1 else {
            tensor = replicaWorld.worldSize > 1 ? TensorParallelGroup(replicaWorld, activationSync: activationSync) : .single
            links = nil
            return
        }
        tensor =
            layout.tensorParallelSize == 1
            ? .single : TensorParallelGroup(try replicaWorld.split(layout.groups(.tensor), name: "tp")!, activationSync: activationSync)
        links = try StageLinks(world: replicaWorld, layout: layout, activationSync: activationSync)
    }

    /// Whether this rank drives its replica (its first rank: stage 0, tp 0).
    public var isReplicaDriver: Bool { (world?.rank ?? 0) == 0 }

    /// Whether this rank's stage is the first, which embeds the tokens (the driver's stage).
    public var isFirstStage: Bool { stage == 0 }

    /// Why a rank of the replica is gone, once one is; nil while all are here.
    var failure: CommError? {
        world?.failure ?? links?.failure
    }

    /// Closes the tensor group (when split off), the links, the expert groups and the replica's world (when split
    /// off); not `all`. Idempotent.
    public func shutdown() {
        links?.shutdown()
        experts?.shutdown()
        if layout.pipelineParallelSize > 1 { tensor.group?.shutdown() }
        splitReplica?.shutdown()
    }
}

/// A pipeline stage's point-to-point links to its neighbours, each a group of two of its own (own connections and
/// executor — `SubgroupPath.newGroup`), so a stage's send to the next runs while it computes the next batch, and the
/// driver's receive of the logits never waits behind its send of hidden states (a shared executor would run them
/// one after the other, and deadlock once both messages outgrow the socket buffers).
///
/// - `previous`: `{(stage − 1, t), (stage, t)}` — hidden states in.
/// - `next`: `{(stage, t), (stage + 1, t)}` — hidden states out.
/// - `logits`: `{driver, (last stage, tp 0)}`, on those two ranks only — the last stage's logits back to the driver.
final class StageLinks: @unchecked Sendable {
    private let previous: ProcessGroup?
    private let next: ProcessGroup?
    private let logits: ProcessGroup?
    /// The last send on `next` or `logits` still in flight (sends complete in order on each link; a send waits for
    /// the one before it, so a failure is reported by the next step, and hidden states never pile up).
    private var pendingSend: Work?
    /// How hidden states travel (logits always in float32).
    private let activationSync: ActivationSync

    init(world: ProcessGroup, layout: ParallelLayout, activationSync: ActivationSync) throws(CommError) {
        self.activationSync = activationSync
        let pp = layout.pipelineParallelSize
        let stage = layout.coordinates(of: world.rank).stage
        // Links from even stages in one split, from odd ones in another: a rank is in at most one group of each.
        var linkGroups: [[[Int]]] = [[], []]
        for from in 0..<(pp - 1) {
            for t in 0..<layout.tensorParallelSize {
                linkGroups[from % 2].append([layout.rank(data: 0, stage: from, tensor: t), layout.rank(data: 0, stage: from + 1, tensor: t)])
            }
        }
        let even = try world.split(linkGroups[0], name: "pp-link-even", path: .newGroup)
        let odd = linkGroups[1].isEmpty ? nil : try world.split(linkGroups[1], name: "pp-link-odd", path: .newGroup)
        // Stage s receives on the link from s − 1 and sends on the link to s + 1.
        previous = stage == 0 ? nil : (stage - 1) % 2 == 0 ? even : odd
        next = stage == pp - 1 ? nil : stage % 2 == 0 ? even : odd
        let lastHead = layout.rank(data: 0, stage: pp - 1, tensor: 0)
        logits = try world.split([[0, lastHead]], name: "pp-logits", path: .newGroup)
    }

    var failure: CommError? { previous?.failure ?? next?.failure ?? logits?.failure }

    /// Receives the previous stage's hidden states for a batch of `rows` tokens.
    func receiveHidden(rows: Int, width: Int) throws(CommError) -> Tensor {
        let hidden = Tensor(zeros: [rows, width], dtype: .float32)
        guard activationSync != .float32 else {
            try previous!.recv(into: hidden, from: 0)
            return hidden
        }
        let encoded = Tensor(zeros: [activationSync.encodedBytes(blocks: Self.blocks(hidden.count))], dtype: .int8)
        try previous!.recv(into: encoded, from: 0)
        activationSync.decode(encoded.baseAddress, count: hidden.count, into: hidden.baseAddress.assumingMemoryBound(to: Float.self))
        return hidden
    }

    /// Starts sending hidden states to the next stage (encoded as `activationSync` says).
    func sendHidden(_ hidden: Tensor) throws(CommError) {
        guard activationSync != .float32 else { return try send(hidden, on: next!, to: 1) }
        let blocks = Self.blocks(hidden.count)
        let encoded = Tensor(zeros: [activationSync.encodedBytes(blocks: blocks)], dtype: .int8)
        activationSync.encode(hidden.baseAddress.assumingMemoryBound(to: Float.self), count: hidden.count, blocks: blocks, into: encoded.baseAddress)
        try send(encoded, on: next!, to: 1)
    }

    /// Blocks of 32 values holding `count` values.
    private static func blocks(_ count: Int) -> Int { (count + ActivationSync.blockValues - 1) / ActivationSync.blockValues }

    /// Starts sending the last stage's logits to the driver (on the last stage's tp rank 0).
    func sendLogits(_ values: Tensor) throws(CommError) {
        try send(values, on: logits!, to: 0)
    }

    /// Starts receiving a batch's logits from the last stage (on the driver).
    func receiveLogits(rows: Int, vocabularySize: Int) -> PendingLogits {
        let values = Tensor(zeros: [rows, vocabularySize], dtype: .float32)
        return PendingLogits(values: values, work: logits!.irecv(into: values, from: 1))
    }

    private func send(_ tensor: Tensor, on link: ProcessGroup, to peer: Int) throws(CommError) {
        try pendingSend?.wait()
        pendingSend = link.isend(tensor, to: peer)
    }

    /// Waits for the last send (so nothing is left half-sent when the engine stops).
    func flush() throws(CommError) {
        try pendingSend?.wait()
        pendingSend = nil
    }

    func shutdown() {
        for group in [previous, next, logits].compactMap({ $0 }) { group.shutdown() }
    }
}

/// Logits on their way from the last pipeline stage to the driver.
public struct PendingLogits {
    let values: Tensor
    let work: Work?

    /// The logits `[logitRows, vocabularySize]` once they have arrived.
    ///
    /// - Throws: `CommError` when the last stage's rank failed.
    public func wait() throws(CommError) -> Tensor {
        try work?.wait()
        return values
    }
}
