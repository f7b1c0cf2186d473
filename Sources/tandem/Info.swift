import ArgumentParser
import Foundation
import TandemComm
import TandemEngine
import TandemModel
import TandemParallel

/// `tandem info`: the settings in force, or with `--layout` which rank holds what.
struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show Tandem's environment variables and their values, or with --layout each rank's place in a parallel layout.",
        discussion: """
            --layout prints, for world = dp × pp × tp ranks, each rank's (dp, pp, tp) coordinates, its host (ranks fill \
            hosts in order, --nproc-per-node at a time, as `tandem launch` places them), its tensor-parallel group and, \
            with --model, the decoder layers its pipeline stage holds (TANDEM_PP_LAYER_PARTITION or the even split) and, \
            for a mixture-of-experts model, its experts (a slice of every one, or with --enable-expert-parallel the \
            whole experts --expert-placement gives it over its stage's tp group, or with --dp > 1 over the stage's \
            dp × tp ranks across the replicas, as vLLM places them). A layout the model cannot take is refused naming the numbers.
            """)

    @Flag(help: "Print each rank's place in the --tp × --pp × --dp layout instead.")
    var layout = false

    @Option(help: "Tensor-parallel size (with --layout).")
    var tp = 1

    @Option(help: "Pipeline stages (with --layout).")
    var pp = 1

    @Option(help: "Data-parallel replicas (with --layout).")
    var dp = 1

    @Option(name: .customLong("nproc-per-node"), help: "Ranks per host (with --layout; default: all on one).")
    var nprocPerNode: Int?

    @Option(help: "A checkpoint directory, for the layers each stage holds (with --layout).")
    var model: String?

    @Flag(name: .customLong("enable-expert-parallel"), help: "Whole experts per rank (with --layout and a MoE --model).")
    var enableExpertParallel = false

    @Option(name: .customLong("expert-placement"), help: "linear or round_robin (with --enable-expert-parallel).")
    var expertPlacement: ExpertPlacement = .linear

    func validate() throws {
        if !layout, tp != 1 || pp != 1 || dp != 1 || nprocPerNode != nil || model != nil || enableExpertParallel {
            throw ValidationError("--tp, --pp, --dp, --nproc-per-node, --model and --enable-expert-parallel go with --layout")
        }
        if enableExpertParallel && model == nil { throw ValidationError("--enable-expert-parallel needs --model (a mixture-of-experts checkpoint)") }
        if let nprocPerNode, nprocPerNode < 1 { throw ValidationError("--nproc-per-node must be ≥ 1, got \(nprocPerNode)") }
    }

    func run() throws {
        guard !layout else { return try printLayout() }
        print("Environment variables (value in force, or default):")
        for variable in TandemEnvironment.all {
            let secret = [TandemEnvironment.jobToken.name, TandemEnvironment.apiKey.name].contains(variable.name)
            let shown = secret && variable.value != nil ? "(set, hidden)" : (variable.value ?? variable.defaultValue)
            print("  \(variable.name) = \(shown)")
            print("      \(variable.summary)")
        }
        let options = try ProcessGroupOptions.fromEnvironment()
        let host = options.hostIdentity ?? HostIdentity.current()
        print("Backend chain (per group, decided when it is created; TANDEM_LOG_LEVEL=info logs each choice):")
        print("  this host: \(host)")
        switch options.backend {
        case .auto:
            print("  auto: shared memory when every member has this host id and can map the others' segments;")
            print("        hierarchical (shared memory per host, TCP among host leaders) across hosts when a host has ≥ 2 ranks;")
            print("        TCP otherwise")
        case .shm:
            print("  shm (forced): groups spanning hosts, or a /dev/shm without room, fail to be created")
        case .tcp:
            print("  tcp (forced): sockets even between ranks of one host")
        case .hier:
            print("  hier (forced): hierarchical whenever a group spans hosts, even with one rank per host")
        case .mpi:
            print("  mpi (forced): MPI's collectives over a communicator of each group's members (one mpirun/srun job)")
        }
        print("  MPI backend in this build: \(BackendChoice.buildHasMPI ? "yes" : "no (swift build --traits MPI)")")
        print("  shared memory per rank: \(2 * options.sharedBufferBytes / 1024) KiB exchange + mailboxes; /dev/shm free: \(devShmFree())")
    }

    private func printLayout() throws {
        let world = tp * pp * dp
        let layout = try ParallelLayout(worldSize: world, tensorParallelSize: tp, pipelineParallelSize: pp, dataParallelSize: dp)
        var partition: PipelinePartition?
        var experts: Int?
        if let model {
            // The checks an engine makes before it spawns a rank (heads, experts, the stages' layers).
            let engine = EngineConfig(
                model: model, pipelineParallelSize: pp, expertPlacement: enableExpertParallel ? expertPlacement : nil, dataParallelSize: dp)
            do {
                partition = try LLM.partition(engine, tensorParallelSize: tp)
                experts = try ModelFiles.config(model).expertCount
            } catch let error as ModelLoadError {
                throw CommandFailure("\(error)")
            }
        }
        let perNode = nprocPerNode ?? world
        print("world \(world) = dp \(dp) × pp \(pp) × tp \(tp), \(perNode) rank(s) per host" + (partition.map { "; layers per stage \($0)" } ?? ""))
        print("rank  dp  pp  tp  host  tp group      layers" + (experts == nil ? "" : " | experts"))
        let tensorGroups = layout.groups(.tensor)
        for rank in 0..<world {
            let (data, stage, tensor) = layout.coordinates(of: rank)
            let group = tensorGroups.first { $0.contains(rank) }!.map(String.init).joined(separator: ",")
            var layers = "-"
            if let partition {
                let range = partition.layers(ofStage: stage)
                var parts = [range.count == 1 ? "layer \(range.lowerBound)" : "layers \(range.lowerBound)–\(range.upperBound - 1)"]
                if stage == 0 { parts.insert("embedding", at: 0) }
                if stage == pp - 1 { parts.append("norm, LM head") }
                layers = parts.joined(separator: ", ")
            }
            if let experts {
                if enableExpertParallel {
                    // Experts are placed over the stage's tp group, or with dp > 1 its dp × tp ranks, as they run.
                    let group = layout.groups(dp > 1 ? .expert : .tensor).first { $0.contains(rank) }!
                    let held = expertPlacement.experts(of: group.firstIndex(of: rank)!, ranks: group.count, experts: experts)
                    layers += " | " + (held.isEmpty ? "none" : held.map(String.init).joined(separator: ",")) + " of \(experts), whole"
                } else {
                    layers += " | all \(experts), 1/\(tp) of each"
                }
            }
            print(
                String(rank).padding(6) + String(data).padding(4) + String(stage).padding(4) + String(tensor).padding(4)
                    + String(rank / perNode).padding(6) + "[\(group)]".padding(13) + layers)
        }
        if perNode < world, tp > perNode || perNode % tp != 0 {
            print("note: a tensor-parallel group spans hosts (tp \(tp), \(perNode) per host); keep tp within a host")
        }
    }

    private func devShmFree() -> String {
        var info = statvfs()
        guard statvfs("/dev/shm", &info) == 0 else { return "unknown (no /dev/shm)" }
        return "\(Int(info.f_bavail) * Int(info.f_frsize) / (1 << 20)) MiB"
    }
}

extension String {
    /// The text left-aligned in `width` columns.
    fileprivate func padding(_ width: Int) -> String { count >= width ? self + " " : self + String(repeating: " ", count: width - count) }
}
