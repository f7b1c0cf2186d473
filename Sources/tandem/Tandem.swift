import ArgumentParser
import Foundation
import TandemComm

/// The `tandem` command: generate, make-model, launch, bench, info.
@main
struct Tandem: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tandem",
        abstract: "Distributed LLM inference runtime: generation, launcher, collectives and benchmarks.",
        subcommands: [Generate.self, MakeModel.self, Launch.self, Bench.self, Info.self, Worker.self])

    /// Refuses an invalid `TANDEM_*` value before any command runs, then runs the command.
    static func main() {
        do {
            try TandemEnvironment.checkValues()
        } catch {
            FileHandle.standardError.write(Data("Error: \(error)\n".utf8))
            Foundation.exit(2)
        }
        main(nil)
    }
}

/// `tandem bench …`
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Benchmarks (nccl-tests conventions).",
        subcommands: [BenchComm.self, BenchGroups.self, BenchGenerate.self, BenchThroughput.self])
}
