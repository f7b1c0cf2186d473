import ArgumentParser
import Foundation
import TandemComm

/// `tandem launch`: torchrun's process model.
struct Launch: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Start one process per rank with the rendezvous environment (torchrun semantics).",
        discussion: """
            Sets MASTER_ADDR, MASTER_PORT, WORLD_SIZE, RANK, LOCAL_RANK, LOCAL_WORLD_SIZE and TANDEM_JOB_TOKEN \
            (generated when unset on a single node) for every worker, prefixes each output line with [rankN]:, \
            and when any worker fails stops the others (SIGTERM, then SIGKILL after --grace-period) and exits \
            non-zero naming the rank that failed first. Each worker leads a process group of its own (signals \
            reach what it started) and dies with the launcher, even on kill -9 (Linux).
            """)

    @Option(name: .customLong("nproc-per-node"), help: "Worker processes on this node.")
    var processesPerNode: Int = 1

    @Option(name: .customLong("nnodes"), help: "Number of nodes.")
    var nodeCount: Int = 1

    @Option(name: .customLong("node-rank"), help: "This node's index.")
    var nodeRank: Int = 0

    @Option(name: .customLong("master-addr"), help: "Address of node 0 (the store).")
    var masterAddress: String = "127.0.0.1"

    @Option(name: .customLong("master-port"), help: "Port of the store; 0 picks a free port (single node).")
    var masterPort: Int = 29500

    @Option(name: .customLong("grace-period"), help: "Seconds between SIGTERM and SIGKILL when stopping workers.")
    var gracePeriod: Double = 5

    @Flag(name: .customLong("no-prefix"), help: "Do not prefix output lines with the rank.")
    var noPrefix = false

    @Argument(parsing: .captureForPassthrough, help: "-- PROGRAM [ARGS…]")
    var command: [String] = []

    func validate() throws {
        guard processesPerNode >= 1 else { throw ValidationError("--nproc-per-node must be ≥ 1") }
        guard (0...65535).contains(masterPort) else { throw ValidationError("--master-port must be in 0…65535") }
        guard !programAndArguments.isEmpty else {
            throw ValidationError("give the program to run after --, e.g. tandem launch --nproc-per-node 2 -- ./worker")
        }
    }

    private var programAndArguments: [String] {
        command.first == "--" ? Array(command.dropFirst()) : command
    }

    func run() throws {
        var configuration = LaunchConfiguration(
            processesPerNode: processesPerNode, program: programAndArguments[0], arguments: Array(programAndArguments.dropFirst()))
        configuration.nodeCount = nodeCount
        configuration.nodeRank = nodeRank
        configuration.masterAddress = masterAddress
        configuration.masterPort = UInt16(masterPort)
        configuration.gracePeriod = gracePeriod
        configuration.prefixOutput = !noPrefix
        configuration.wrapper = [selfExecutable(), "launch-child", "--"]
        let outcome = try ProcessLauncher.run(configuration)
        if outcome.exitCode != 0 { throw ExitCode(outcome.exitCode) }
    }
}

/// `tandem launch-child -- PROGRAM [ARGS…]`: how `tandem launch` starts each worker — arrange to die with the
/// launcher (`TANDEM_PARENT_PID`), then become PROGRAM (exec). Not for direct use.
struct LaunchChild: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "launch-child", abstract: "Become PROGRAM after arranging to die with the launcher (used by `tandem launch`).",
        shouldDisplay: false)

    @Argument(parsing: .captureForPassthrough, help: "-- PROGRAM [ARGS…]")
    var command: [String] = []

    func run() throws {
        let argv = command.first == "--" ? Array(command.dropFirst()) : command
        guard let program = argv.first else { throw ValidationError("give the program after --") }
        try ParentDeath.follow()
        let pointers = argv.map { strdup($0) } + [nil]
        execv(program, pointers)
        throw CommandFailure("cannot run \(program): \(String(cString: strerror(errno)))")
    }
}
