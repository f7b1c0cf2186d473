import ArgumentParser
import Foundation
import TandemComm

/// The `tandem` command: generate, serve, make-model, launch, bench, info.
@main
struct Tandem: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tandem",
        abstract: "Distributed LLM inference runtime: generation, launcher, collectives and benchmarks.",
        version: TandemVersion.current,
        subcommands: [Generate.self, Serve.self, MakeModel.self, Launch.self, Bench.self, Info.self, Inspect.self, Worker.self, LaunchChild.self])

    /// Refuses an argument that is not UTF-8 and an invalid `TANDEM_*` value before any command runs, then runs
    /// the command.
    static func main() {
        do {
            // Swift would read invalid UTF-8 in an argument (a prompt) as U+FFFD without a word.
            for index in 1..<Int(CommandLine.argc) {
                guard let raw = CommandLine.unsafeArgv[index], String(validatingCString: raw) != nil else {
                    let option = CommandLine.arguments[index - 1].hasPrefix("-") ? " (the value of \(CommandLine.arguments[index - 1]))" : ""
                    throw ValidationError("argument \(index)\(option) is not valid UTF-8; Tandem reads prompts and options as UTF-8 text")
                }
            }
            try TandemEnvironment.checkValues()
        } catch {
            FileHandle.standardError.write(Data("Error: \(error)\n".utf8))
            Foundation.exit(2)
        }
        main(nil)
    }
}

/// A command that could not do its work (not a misuse of its options: no usage text is printed with it).
struct CommandFailure: Error, CustomStringConvertible {
    let description: String

    init(_ description: String) { self.description = description }
}

/// `tandem bench …`
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Benchmarks (nccl-tests conventions).",
        subcommands: [BenchComm.self, BenchGroups.self, BenchGenerate.self, BenchThroughput.self, BenchServe.self, BenchAccuracy.self])
}
