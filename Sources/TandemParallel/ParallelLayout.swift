/// Which family of process groups a rank list belongs to.
public enum ParallelGroupKind: String, Sendable, CaseIterable {
    case tensor = "tp"
    case pipeline = "pp"
    case data = "dp"
    case expert = "ep"
}

/// Why a parallel configuration cannot be used; the message says what would work.
public enum ParallelConfigError: Error, Equatable, CustomStringConvertible {
    /// A size is below 1.
    case nonPositive(name: String, value: Int)
    /// The product of the sizes differs from the world size.
    case productMismatch(worldSize: Int, tensor: Int, pipeline: Int, data: Int)
    /// `ParallelState.initialize` was called while a state is installed.
    case alreadyInitialized(ParallelLayout)
    /// The model's layers cannot be split over the pipeline stages as asked.
    case invalidPartition(String)

    public var description: String {
        switch self {
        case let .nonPositive(name, value):
            "\(name) must be ≥ 1, got \(value)"
        case let .productMismatch(worldSize, tensor, pipeline, data):
            "the world has \(worldSize) ranks but dataParallelSize × pipelineParallelSize × tensorParallelSize = "
                + "\(data) × \(pipeline) × \(tensor) = \(data * pipeline * tensor); pick sizes whose product is \(worldSize)"
        case let .alreadyInitialized(layout):
            "parallel state is already initialized (tp \(layout.tensorParallelSize), pp \(layout.pipelineParallelSize), "
                + "dp \(layout.dataParallelSize)); call ParallelState.destroy() first"
        case let .invalidPartition(message):
            "pipeline partition: \(message)"
        }
    }
}

/// The rank layout of vLLM's parallel state: `ranks = arange(world).reshape(dp, pp, tp)`.
///
/// Tensor-parallel groups are consecutive ranks (keep them on one host); pipeline groups stride by tp; data
/// groups stride by pp·tp; the expert group of a pipeline stage is all its dp·tp ranks. Group lists come in
/// vLLM's order, so group `i` of a family is the same ranks here as there.
public struct ParallelLayout: Sendable, Equatable {
    public let worldSize: Int
    public let tensorParallelSize: Int
    public let pipelineParallelSize: Int
    public let dataParallelSize: Int

    /// Validates the sizes against the world size.
    ///
    /// - Throws: `ParallelConfigError` naming the size at fault and what the product must be.
    public init(worldSize: Int, tensorParallelSize: Int, pipelineParallelSize: Int = 1, dataParallelSize: Int = 1) throws(ParallelConfigError) {
        for (name, value) in [
            ("worldSize", worldSize), ("tensorParallelSize", tensorParallelSize),
            ("pipelineParallelSize", pipelineParallelSize), ("dataParallelSize", dataParallelSize),
        ] where value < 1 {
            throw .nonPositive(name: name, value: value)
        }
        guard tensorParallelSize * pipelineParallelSize * dataParallelSize == worldSize else {
            throw .productMismatch(
                worldSize: worldSize, tensor: tensorParallelSize, pipeline: pipelineParallelSize, data: dataParallelSize)
        }
        self.worldSize = worldSize
        self.tensorParallelSize = tensorParallelSize
        self.pipelineParallelSize = pipelineParallelSize
        self.dataParallelSize = dataParallelSize
    }

    /// Where global rank `rank` sits: its data-parallel index, pipeline stage and tensor-parallel index.
    public func coordinates(of rank: Int) -> (data: Int, stage: Int, tensor: Int) {
        (rank / (pipelineParallelSize * tensorParallelSize), rank / tensorParallelSize % pipelineParallelSize, rank % tensorParallelSize)
    }

    /// The global rank at data-parallel index `data`, pipeline stage `stage`, tensor-parallel index `tensor`.
    public func rank(data: Int, stage: Int, tensor: Int) -> Int {
        (data * pipelineParallelSize + stage) * tensorParallelSize + tensor
    }

    /// Every group of `kind`, each a list of global ranks.
    public func groups(_ kind: ParallelGroupKind) -> [[Int]] {
        let (dp, pp, tp) = (dataParallelSize, pipelineParallelSize, tensorParallelSize)
        switch kind {
        case .tensor:
            // ranks.view(-1, tp): one group per (data, stage).
            return (0..<dp).flatMap { d in (0..<pp).map { p in (0..<tp).map { rank(data: d, stage: p, tensor: $0) } } }
        case .pipeline:
            // ranks.transpose(2, 1).reshape(-1, pp): one group per (data, tensor).
            return (0..<dp).flatMap { d in (0..<tp).map { t in (0..<pp).map { rank(data: d, stage: $0, tensor: t) } } }
        case .data:
            // ranks.transpose(0, 2).reshape(-1, dp): one group per (tensor, stage).
            return (0..<tp).flatMap { t in (0..<pp).map { p in (0..<dp).map { rank(data: $0, stage: p, tensor: t) } } }
        case .expert:
            // ranks.transpose(1, 2).reshape(-1, dp·tp): one group per stage, its ranks in (data, tensor) order.
            return (0..<pp).map { p in (0..<dp).flatMap { d in (0..<tp).map { rank(data: d, stage: p, tensor: $0) } } }
        }
    }

    /// The group of `kind` that contains `rank`.
    public func group(_ kind: ParallelGroupKind, containing rank: Int) -> [Int] {
        precondition((0..<worldSize).contains(rank), "rank \(rank) is outside 0..<\(worldSize)")
        return groups(kind).first { $0.contains(rank) }!
    }
}
