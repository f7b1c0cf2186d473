import ArgumentParser
import Foundation
import TandemComm
import TandemEngine
import TandemModel
import TandemParallel
import TandemTensor

/// Options shared by the commands that run a model: which checkpoint, how it is split, threads per rank.
struct ModelOptions: ParsableArguments {
    @Option(help: "A Hugging Face checkpoint directory (config.json, tokenizer.json, *.safetensors).")
    var model: String

    @Option(help: "Tensor-parallel size: local ranks to spawn, or the world size under `tandem launch`.")
    var tp: Int = 1

    @Option(help: "BLAS and kernel threads per rank (default: the cores divided among the local ranks).")
    var threads: Int?

    @Option(name: .customLong("compute-dtype"), help: "What the linear layers multiply in: float32 (exact), or bfloat16 (2–3× faster matrix products on CPUs with AVX-512 BF16; logits within ~3e-3 of float32).")
    var computeDType: ComputePrecision = .float32

    @OptionGroup var engine: EngineOptions

    /// `--threads`, or this host's cores divided among its ranks (`LOCAL_WORLD_SIZE` under the launcher).
    var threadsPerRank: Int {
        let localRanks = Int(ProcessInfo.processInfo.environment["LOCAL_WORLD_SIZE"] ?? "") ?? 1
        return threads ?? max(1, ProcessInfo.processInfo.activeProcessorCount / localRanks)
    }

    func validate() throws {
        guard tp >= 1 else { throw ValidationError("--tp must be ≥ 1, got \(tp)") }
        if let threads, threads < 1 { throw ValidationError("--threads must be ≥ 1, got \(threads)") }
        if computeDType == .bfloat16 && !ComputePrecision.bfloat16Available {
            throw ValidationError("--compute-dtype bfloat16 needs a CPU with AVX-512 BF16, which this one lacks; use float32")
        }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: model, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw ValidationError("--model \(model) is not a directory (a Hugging Face checkpoint directory; `tandem make-model --out DIR` writes one)")
        }
    }

    /// Runs `body` with this rank's `LLM`: in this process for tp 1, on each rank under `tandem launch`, or —
    /// without a launcher and with tp > 1 — by re-running the command as `tp` local ranks.
    ///
    /// - Parameter body: gets the model and whether this rank reports (rank 0).
    func run(_ body: (LLM, _ reports: Bool) throws -> Void) throws {
        let environment = ProcessInfo.processInfo.environment
        guard environment["RANK"] != nil || tp == 1 else {
            try spawnRanks(tp, removing: nil)
            return
        }
        var world: ProcessGroup?
        var group = TensorParallelGroup.single
        defer {
            ParallelState.destroy()
            world?.shutdown()
        }
        if environment["RANK"] != nil {
            let launched = try ProcessGroup.initialize(Rendezvous.fromEnvironment())
            world = launched
            guard launched.worldSize == tp else {
                throw ValidationError("the launcher started \(launched.worldSize) ranks but --tp is \(tp); Tandem's generate runs tensor parallelism only, so they must match")
            }
            group = TensorParallelGroup(try ParallelState.initialize(world: launched, tensorParallelSize: tp).tensor)
        }
        let reports = (world?.rank ?? 0) == 0
        let bar = reports && isatty(2) != 0 ? ProgressBar(title: "loading \(model)") : nil
        let localRanks = Int(ProcessInfo.processInfo.environment["LOCAL_WORLD_SIZE"] ?? "") ?? 1
        let llm = try LLM(
            model: model, group: group, threads: threadsPerRank, cache: engine.cacheConfig, scheduler: engine.schedulerConfig, localRanks: localRanks,
            precision: computeDType,
            progress: bar.map { bar in { bar.show($0, of: $1) } })
        bar?.finish()
        if engine.logStats && reports { llm.statsInterval = 5 }
        try body(llm, reports)
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
