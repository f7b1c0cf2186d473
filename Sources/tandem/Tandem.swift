import ArgumentParser

/// The `tandem` command: generate, make-model, launch, bench, info.
@main
struct Tandem: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tandem",
        abstract: "Distributed LLM inference runtime: generation, launcher, collectives and benchmarks.",
        subcommands: [Generate.self, MakeModel.self, Launch.self, Bench.self, Info.self, Worker.self])
}

/// `tandem bench …`
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Benchmarks (nccl-tests conventions).",
        subcommands: [BenchComm.self, BenchGroups.self, BenchGenerate.self, BenchThroughput.self])
}
