import TandemParallel
import TandemTensor

/// Everything a rank needs to load its part of an engine: the checkpoint, how it computes, its KV cache and the
/// scheduler's caps (which size the cache). An engine that spawns its own workers sends them this value, so a
/// worker takes no options of its own and cannot disagree with its driver.
public struct EngineConfig: Sendable, Codable, Equatable {
    /// Ranks of the whole engine: tp × pp × dp (tp given apart, as the spawning call's argument).
    public func worldSize(tensorParallelSize: Int) -> Int { tensorParallelSize * pipelineParallelSize * dataParallelSize }

    /// A Hugging Face checkpoint directory.
    public var model: String
    /// What the linear layers multiply in (`.bfloat16` needs AVX-512 BF16).
    public var precision: ComputePrecision
    /// The blocks every linear layer's weight is quantized to as it loads (llama.cpp's Q8_0/Q4_0); nil: as stored.
    public var quantization: WeightQuantization?
    /// Threads per rank for BLAS and the kernels; nil leaves BLAS's own choice and runs the kernels on one.
    public var threads: Int?
    /// The KV cache's size, dtype and prefix caching.
    public var cache: CacheConfig
    /// The step's token budget and the running-request cap.
    public var scheduler: SchedulerConfig
    /// Ranks sharing this host's memory (for the default cache size); nil: the group's size.
    public var localRanks: Int?
    /// Pipeline stages the layers are split over (the replica's ranks are tp × this).
    public var pipelineParallelSize: Int
    /// Data-parallel replicas, each a whole tp × pp engine over ranks of its own behind one front end.
    public var dataParallelSize: Int
    /// With expert parallelism, how each MoE layer's experts are placed over a stage's ranks (each rank holds
    /// whole experts); nil: every expert tensor-parallel.
    public var expertPlacement: ExpertPlacement?
    /// With expert parallelism over several replicas, how a MoE layer moves tokens to their experts' ranks.
    public var expertDispatch: ExpertDispatch
    /// How activations travel between ranks: tensor-parallel all-reduces and pipeline sends (`TANDEM_ACTIVATION_SYNC`).
    public var activationSync: ActivationSync

    /// Whether the replicas must step together: their MoE layers' collectives span them all (expert parallelism
    /// with dp > 1).
    public var stepsReplicasTogether: Bool { expertPlacement != nil && dataParallelSize > 1 }

    public init(
        model: String, precision: ComputePrecision = .float32, threads: Int? = nil, cache: CacheConfig = CacheConfig(),
        scheduler: SchedulerConfig = SchedulerConfig(), localRanks: Int? = nil, pipelineParallelSize: Int = 1,
        expertPlacement: ExpertPlacement? = nil, dataParallelSize: Int = 1, expertDispatch: ExpertDispatch = .allToAll,
        quantization: WeightQuantization? = nil, activationSync: ActivationSync = .float32
    ) {
        self.quantization = quantization
        self.activationSync = activationSync
        self.expertDispatch = expertDispatch
        self.dataParallelSize = dataParallelSize
        self.model = model
        self.precision = precision
        self.threads = threads
        self.cache = cache
        self.scheduler = scheduler
        self.localRanks = localRanks
        self.pipelineParallelSize = pipelineParallelSize
        self.expertPlacement = expertPlacement
    }
}
