import ArgumentParser
import TandemComm

/// `tandem info`: the settings in force.
struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show Tandem's environment variables and their values.")

    func run() throws {
        print("Environment variables (value in force, or default):")
        for variable in TandemEnvironment.all {
            let shown = variable.name == TandemEnvironment.jobToken.name && variable.value != nil ? "(set, hidden)" : (variable.value ?? variable.defaultValue)
            print("  \(variable.name) = \(shown)")
            print("      \(variable.summary)")
        }
    }
}
