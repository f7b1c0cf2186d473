import ArgumentParser

/// The `tandem` command: launch, bench, info.
@main
struct Tandem: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tandem",
        abstract: "Distributed LLM inference runtime: launcher, collectives and benchmarks.",
        subcommands: [Launch.self, Bench.self, Info.self])
}

/// `tandem bench …`
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Benchmarks (nccl-tests conventions).",
        subcommands: [BenchComm.self, BenchGroups.self])
}
