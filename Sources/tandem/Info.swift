import ArgumentParser
import Foundation
import TandemComm

/// `tandem info`: the settings in force.
struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show Tandem's environment variables and their values.")

    func run() throws {
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
        }
        print("  shared memory per rank: \(2 * options.sharedBufferBytes / 1024) KiB exchange + mailboxes; /dev/shm free: \(devShmFree())")
    }

    private func devShmFree() -> String {
        var info = statvfs()
        guard statvfs("/dev/shm", &info) == 0 else { return "unknown (no /dev/shm)" }
        return "\(Int(info.f_bavail) * Int(info.f_frsize) / (1 << 20)) MiB"
    }
}
