import ArgumentParser
import Foundation
import TandemComm
import TandemEngine
import TandemModel
import TandemParallel
import TandemTensor

/// Options shared by the commands that run a model: which checkpoint, how it is split, threads per rank.
struct ModelOptions: ParsableArguments {
    @Option(help: "A Hugging Face checkpoint directory (config.json, tokenizer.json, *.safetensors) or a GGUF file (llama, qwen2; F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q6_K tensors).")
    var model: String

    @Option(help: "Tensor-parallel size: ranks each pipeline stage's layers are split over.")
    var tp: Int = 1

    @Option(help: "Pipeline-parallel size: stages the layers are split over (vLLM's split; TANDEM_PP_LAYER_PARTITION=a,b,… sets it). Without a launcher Tandem spawns --tp × --pp local ranks; under `tandem launch` the world must be --tp × --pp.")
    var pp: Int = 1

    @Option(help: "Data-parallel size: whole tp × pp replicas of the model behind one front end, which sends each request to the replica with the least outstanding work. Without a launcher Tandem spawns --tp × --pp × --dp local ranks; under `tandem launch` the world must be that product.")
    var dp: Int = 1

    @Flag(name: .customLong("enable-expert-parallel"), help: "Spread each MoE layer's experts over a stage's ranks — its tp ranks, or with --dp > 1 the stage's dp × tp ranks across the replicas, which then step together — each rank holding whole experts (vLLM's --enable-expert-parallel); without it every expert is split tensor-parallel.")
    var enableExpertParallel = false

    @Option(name: .customLong("expert-placement"), help: "With --enable-expert-parallel: linear (contiguous blocks, the first experts % ranks ranks one more) or round_robin (expert e on rank e mod ranks).")
    var expertPlacement: ExpertPlacement = .linear

    @Option(name: .customLong("expert-dispatch"), help: "With --enable-expert-parallel and --dp > 1, how a MoE layer moves tokens to their experts' ranks: all_to_all (only each token's routed pairs travel) or all_gather (every replica's tokens to every rank, then a reduce-scatter).")
    var expertDispatch: ExpertDispatch = .allToAll

    @Option(help: "BLAS and kernel threads per rank (default: the cores divided among the local ranks).")
    var threads: Int?

    @Option(name: .customLong("compute-dtype"), help: "What the linear layers multiply in: float32 (exact), or bfloat16 (2–3× faster matrix products on CPUs with AVX-512 BF16; logits within ~3e-3 of float32).")
    var computeDType: ComputePrecision = .float32

    @Option(help: "Quantize every linear layer's weight as it loads, in llama.cpp's block formats, byte for byte as its quantizer writes them: q8_0 (8.5 bits a weight), q4_0 (4.5 bits), q4_k (4.5 bits in 256-value super-blocks, finer scales than q4_0) or q6_k (6.56 bits); decode multiplies the blocks in integers. Each rank quantizes only its slices.")
    var quantization: WeightQuantization?

    @OptionGroup var engine: EngineOptions

    func validate() throws {
        guard tp >= 1 else { throw ValidationError("--tp must be ≥ 1, got \(tp)") }
        guard pp >= 1 else { throw ValidationError("--pp must be ≥ 1, got \(pp)") }
        guard dp >= 1 else { throw ValidationError("--dp must be ≥ 1, got \(dp)") }
        if let threads, threads < 1 { throw ValidationError("--threads must be ≥ 1, got \(threads)") }
        if computeDType == .bfloat16 && !ComputePrecision.bfloat16Available {
            throw ValidationError("--compute-dtype bfloat16 needs a CPU with AVX-512 BF16, which this one lacks; use float32")
        }
        if let quantization, computeDType != .float32 {
            throw ValidationError("--quantization \(quantization.rawValue) multiplies in its own integer kernel; leave --compute-dtype at float32")
        }
        guard FileManager.default.fileExists(atPath: model) else {
            throw ValidationError("--model \(model) does not exist (a Hugging Face checkpoint directory, which `tandem make-model --out DIR` writes, or a GGUF file)")
        }
    }

    /// Ranks of the engine: tp × pp × dp.
    var worldSize: Int { tp * pp * dp }

    /// Ranks on this host: the launcher's local world (torchrun's `LOCAL_WORLD_SIZE`, mpirun's, srun's), else the
    /// tp × pp × dp ranks this process spawns.
    var localRanks: Int { Rendezvous.launchedLocalWorldSize() ?? worldSize }

    /// `--threads`, or this host's cores divided among its ranks.
    var threadsPerRank: Int { threads ?? max(1, ProcessInfo.processInfo.activeProcessorCount / localRanks) }

    /// The engine's configuration from these options and `TANDEM_ACTIVATION_SYNC`.
    ///
    /// - Throws: `ConfigError` for an invalid `TANDEM_ACTIVATION_SYNC` (the program checks it when it starts, too).
    var engineConfig: EngineConfig {
        get throws {
            try EngineConfig(
                model: model, precision: computeDType, threads: threadsPerRank, cache: engine.cacheConfig, scheduler: engine.schedulerConfig,
                localRanks: localRanks, pipelineParallelSize: pp, expertPlacement: enableExpertParallel ? expertPlacement : nil,
                dataParallelSize: dp, expertDispatch: expertDispatch, quantization: quantization,
                activationSync: TandemEnvironment.activationSyncMode())
        }
    }

    /// Runs `body` with this rank's `LLM`. Without a launcher this process is rank 0 and, for tp × pp × dp > 1, spawns
    /// the other ranks itself (`tandem worker` processes); under `tandem launch`, torchrun, mpirun, mpiexec or srun
    /// (`Rendezvous.isLaunched`) every process is one rank of the launched world and calls `body`.
    ///
    /// - Parameter body: gets the model and whether this rank reports (rank 0).
    func run(_ body: (LLM, _ reports: Bool) throws -> Void) throws {
        let world = Rendezvous.isLaunched() ? try ProcessGroup.initialize(Rendezvous.fromLauncher()) : nil
        defer { world?.shutdown() }
        if let world, world.worldSize != worldSize {
            throw CommandFailure(
                "the launcher started \(world.worldSize) ranks but --tp \(tp) × --pp \(pp) × --dp \(dp) is \(worldSize); start tp × pp × dp ranks")
        }
        let reports = (world?.rank ?? 0) == 0
        let bar = reports && isatty(2) != 0 ? ProgressBar(title: "loading \(model)") : nil
        let progress = bar.map { bar in { bar.show($0, of: $1) } }
        let llm = try world.map { try LLM(config: engineConfig, world: $0, progress: progress) }
            ?? LLM(config: try engineConfig, tensorParallelSize: tp, workerProgram: WorkerProgram(path: selfExecutable(), arguments: ["worker"]), progress: progress)
        bar?.finish()
        defer { llm.shutdown() }
        if engine.logStats && reports { llm.statsInterval = 5 }
        try body(llm, reports)
    }
}

/// `tandem worker`: one rank of an engine that spawned it (not for direct use).
struct Worker: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run as a worker rank of the engine that spawned this process (`generate --tp N` starts them; not for direct use).",
        discussion: """
            Joins the world of the spawning engine (torchrun's variables, TANDEM_JOB_TOKEN and TANDEM_PARENT_PID in the \
            environment), receives the engine's configuration, loads this rank's part of the model and runs the \
            engine's step plans until it shuts down. Exits with the engine.
            """,
        shouldDisplay: false)

    func run() throws {
        do {
            try LLM.runSpawnedWorker()
        } catch EngineError.rankFailed {
            // The driver names the rank that failed; saying it here too would print it once per rank.
            throw ExitCode(1)
        }
    }
}

/// A one-line progress bar on standard error.
final class ProgressBar {
    private let title: String

    init(title: String) { self.title = title }

    func show(_ done: Int, of total: Int) {
        let width = 30
        let filled = total > 0 ? done * width / total : width
        let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
        FileHandle.standardError.write(Data("\r\(title) [\(bar)] \(done)/\(total) layers".utf8))
    }

    func finish() { FileHandle.standardError.write(Data("\n".utf8)) }
}

extension ComputePrecision: ExpressibleByArgument {}
extension ExpertPlacement: ExpressibleByArgument {}
extension ExpertDispatch: ExpressibleByArgument {}
extension WeightQuantization: ExpressibleByArgument {}
