import Synchronization
import TandemComm

/// The live process groups of a parallel configuration — vLLM's `parallel_state`: world, tensor (tp),
/// pipeline (pp), data (dp) and, when enabled, expert (ep) groups, laid out by `ParallelLayout`.
///
/// Each group is a `ProcessGroup`: its collectives, `rank`/`worldSize` in the group, and `globalRank`,
/// `firstRank`, `lastRank`, `nextRank`, `previousRank` in world ranks. Every rank of the world creates the
/// state with the same sizes; the groups come from `world.split` in the order tp, pp, dp, ep, on the path
/// `TANDEM_USE_SPLIT_GROUP` picks (carved from the world's connections, or a fresh rendezvous each).
public final class ParallelState: Sendable {
    /// The rank layout.
    public let layout: ParallelLayout
    /// All ranks.
    public let world: ProcessGroup
    /// This rank's tensor-parallel group (consecutive ranks).
    public let tensor: ProcessGroup
    /// This rank's pipeline group (one rank per stage).
    public let pipeline: ProcessGroup
    /// This rank's data-parallel group.
    public let data: ProcessGroup
    /// This rank's expert-parallel group (all dp × tp ranks of its pipeline stage), when enabled.
    public let expert: ProcessGroup?

    /// Creates the groups of this rank.
    ///
    /// - Parameters:
    ///   - world: the group of every rank; its size must be dp × pp × tp.
    ///   - path: how sub-groups are made; nil reads `TANDEM_USE_SPLIT_GROUP`.
    /// - Throws: `ParallelConfigError` for sizes that do not fit the world, `CommError` when a group cannot be
    ///   set up.
    public init(
        world: ProcessGroup, tensorParallelSize: Int, pipelineParallelSize: Int = 1, dataParallelSize: Int = 1,
        enableExpertParallel: Bool = false, path: SubgroupPath? = nil
    ) throws {
        let layout = try ParallelLayout(
            worldSize: world.worldSize, tensorParallelSize: tensorParallelSize, pipelineParallelSize: pipelineParallelSize,
            dataParallelSize: dataParallelSize)
        self.layout = layout
        self.world = world
        func make(_ kind: ParallelGroupKind) throws(CommError) -> ProcessGroup {
            guard let group = try world.split(layout.groups(kind), name: kind.rawValue, path: path) else {
                preconditionFailure("the \(kind) groups of a layout cover every rank")
            }
            return group
        }
        tensor = try make(.tensor)
        pipeline = try make(.pipeline)
        data = try make(.data)
        expert = enableExpertParallel ? try make(.expert) : nil
    }

    /// Shuts the sub-groups down (not the world).
    public func shutdown() {
        for group in [tensor, pipeline, data, expert].compactMap({ $0 }) { group.shutdown() }
    }

    // MARK: - The process-wide state (vLLM's initialize_model_parallel)

    private static let installed = Mutex<ParallelState?>(nil)

    /// The state `initialize` installed, if any.
    public static var current: ParallelState? { installed.withLock { $0 } }

    /// Creates the state and installs it as this process's `current`.
    ///
    /// - Throws: `ParallelConfigError.alreadyInitialized` when a state is installed (call `destroy()` first),
    ///   or what `init` throws.
    @discardableResult
    public static func initialize(
        world: ProcessGroup, tensorParallelSize: Int, pipelineParallelSize: Int = 1, dataParallelSize: Int = 1,
        enableExpertParallel: Bool = false, path: SubgroupPath? = nil
    ) throws -> ParallelState {
        if let existing = current { throw ParallelConfigError.alreadyInitialized(existing.layout) }
        let state = try ParallelState(
            world: world, tensorParallelSize: tensorParallelSize, pipelineParallelSize: pipelineParallelSize,
            dataParallelSize: dataParallelSize, enableExpertParallel: enableExpertParallel, path: path)
        try installed.withLock { (slot: inout ParallelState?) throws in
            if let existing = slot { throw ParallelConfigError.alreadyInitialized(existing.layout) }
            slot = state
        }
        return state
    }

    /// Shuts down and uninstalls the current state, if any.
    public static func destroy() {
        let state = installed.withLock { (slot: inout ParallelState?) -> ParallelState? in
            defer { slot = nil }
            return slot
        }
        state?.shutdown()
    }
}
