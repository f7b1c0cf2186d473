#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import Synchronization

/// What `tandem launch` starts: torchrun's options.
public struct LaunchConfiguration: Sendable {
    /// Worker processes on this node.
    public var processesPerNode: Int
    /// Nodes in the job.
    public var nodeCount: Int = 1
    /// This node's index in 0..<nodeCount.
    public var nodeRank: Int = 0
    /// Address of node 0, where rank 0 serves the store.
    public var masterAddress: String = "127.0.0.1"
    /// Store port; 0 picks a free one (single node only).
    public var masterPort: UInt16 = 29500
    /// The program (a path, or a name looked up in PATH) and its arguments.
    public var program: String
    public var arguments: [String]
    /// Seconds between SIGTERM and SIGKILL when stopping workers.
    public var gracePeriod: Double = 5
    /// Prefix every output line with `[rankN]: `; when false workers write straight to the launcher's stdout
    /// and stderr.
    public var prefixOutput: Bool = true
    /// Extra environment for every worker.
    public var environment: [String: String] = [:]
    /// A command each worker is started through, before the program and its arguments: `tandem launch` uses
    /// `tandem launch-child --`, which arranges for the worker to die with the launcher and then execs it.
    /// Empty: the program is started directly.
    public var wrapper: [String] = []

    /// Creates a configuration for `program` with `processesPerNode` workers.
    public init(processesPerNode: Int, program: String, arguments: [String]) {
        self.processesPerNode = processesPerNode
        self.program = program
        self.arguments = arguments
    }
}

/// How a launched job ended.
public struct LaunchOutcome: Sendable, Equatable {
    /// The worker that failed first, if any.
    public var firstFailure: WorkerFailure?
    /// The launcher's exit status: 0 when every worker exited 0; else the first failure's code (128 + signal
    /// for a signal), or 128 + the signal that stopped the launcher.
    public var exitCode: Int32
}

/// A worker that ended unsuccessfully: its global rank and how it ended.
public struct WorkerFailure: Sendable, Equatable {
    public var rank: Int
    public var ending: WorkerEnding
}

/// How one worker process ended.
public enum WorkerEnding: Sendable, Equatable, CustomStringConvertible {
    case exited(code: Int32)
    case signaled(signal: Int32)

    public var description: String {
        switch self {
        case let .exited(code): "exited with code \(code)"
        case let .signaled(signal): "was killed by signal \(signal) (\(signalName(signal)))"
        }
    }

    var exitCode: Int32 {
        switch self {
        case let .exited(code): code
        case let .signaled(signal): 128 + signal
        }
    }

    var isSuccess: Bool { self == .exited(code: 0) }
}

/// Why a job could not be launched.
public enum LaunchError: Error, Equatable, CustomStringConvertible {
    case invalid(String)
    case spawnFailed(program: String, errno: Int32)
    /// A spawned rank ended before the world group formed.
    case rankEndedEarly(rank: Int, ending: WorkerEnding)

    public var description: String {
        switch self {
        case let .invalid(message): message
        case let .spawnFailed(program, code): "cannot start \(program): \(String(cString: strerror(code)))"
        case let .rankEndedEarly(rank, ending): "rank \(rank) \(ending) before joining the group (its output above says why)"
        }
    }
}

/// The signal (SIGINT or SIGTERM) the launcher received, 0 if none.
private let receivedSignal = Atomic<Int32>(0)

/// torchrun for Tandem: starts one process per rank with the rendezvous environment, prefixes their output,
/// and tears the whole job down when any worker fails or the launcher is interrupted.
public enum ProcessLauncher {
    /// The shortest job token a job on several nodes accepts.
    public static let minimumTokenBytes = 16

    /// Runs the job to completion.
    ///
    /// - Throws: `LaunchError` for an invalid configuration or a program that cannot be started.
    public static func run(_ configuration: LaunchConfiguration) throws -> LaunchOutcome {
        let config = try validate(configuration)
        let program = try resolveProgram(config.program)
        let executable = try config.wrapper.first.map(resolveProgram) ?? program
        let argv = config.wrapper.isEmpty ? [config.program] + config.arguments : config.wrapper + [program] + config.arguments
        var base = ProcessInfo.processInfo.environment
        for (key, value) in config.environment { base[key] = value }
        if base[TandemEnvironment.jobToken.name]?.isEmpty ?? true {
            guard config.nodeCount == 1 else {
                throw LaunchError.invalid(
                    "a job on several nodes needs the same \(TandemEnvironment.jobToken.name) on every node; export one (e.g. `openssl rand -hex 32`)")
            }
            base[TandemEnvironment.jobToken.name] = ThreadLauncher.makeToken()
        }
        if config.nodeCount > 1, let token = base[TandemEnvironment.jobToken.name], token.utf8.count < Self.minimumTokenBytes {
            throw LaunchError.invalid(
                "\(TandemEnvironment.jobToken.name) has \(token.utf8.count) bytes; a job on several nodes needs at least \(Self.minimumTokenBytes) "
                    + "(anyone who can reach the store could guess a short one); e.g. `openssl rand -hex 32`")
        }
        let port = config.masterPort == 0 ? try freePort() : config.masterPort
        let worldSize = config.processesPerNode * config.nodeCount
        base["MASTER_ADDR"] = config.masterAddress
        base["MASTER_PORT"] = String(port)
        base["WORLD_SIZE"] = String(worldSize)
        base["LOCAL_WORLD_SIZE"] = String(config.processesPerNode)
        base[TandemEnvironment.parentPID.name] = String(getpid())

        receivedSignal.store(0, ordering: .relaxed)
        let previousInterrupt = signal(SIGINT) { receivedSignal.store($0, ordering: .relaxed) }
        let previousTerminate = signal(SIGTERM) { receivedSignal.store($0, ordering: .relaxed) }
        defer {
            signal(SIGINT, previousInterrupt)
            signal(SIGTERM, previousTerminate)
        }

        var workers: [Worker] = []
        let errors = ErrorLines()
        for localRank in 0..<config.processesPerNode {
            let rank = config.nodeRank * config.processesPerNode + localRank
            var environment = base
            environment["RANK"] = String(rank)
            environment["LOCAL_RANK"] = String(localRank)
            do {
                workers.append(
                    try Worker.spawn(
                        executable: executable, arguments: argv, environment: environment,
                        rank: rank, prefixOutput: config.prefixOutput, errors: errors))
            } catch {
                stop(workers, gracePeriod: config.gracePeriod)
                throw error
            }
        }
        return supervise(workers, gracePeriod: config.gracePeriod)
    }

    private static func validate(_ config: LaunchConfiguration) throws -> LaunchConfiguration {
        guard config.processesPerNode >= 1 else { throw LaunchError.invalid("--nproc-per-node must be ≥ 1, got \(config.processesPerNode)") }
        guard config.nodeCount >= 1 else { throw LaunchError.invalid("--nnodes must be ≥ 1, got \(config.nodeCount)") }
        guard (0..<config.nodeCount).contains(config.nodeRank) else {
            throw LaunchError.invalid("--node-rank \(config.nodeRank) must be in 0..<\(config.nodeCount) (--nnodes)")
        }
        guard config.masterPort != 0 || config.nodeCount == 1 else {
            throw LaunchError.invalid("--master-port 0 (pick a free port) works only with --nnodes 1; give every node the same port")
        }
        guard config.gracePeriod >= 0 else { throw LaunchError.invalid("the grace period must be ≥ 0") }
        guard !config.program.isEmpty else { throw LaunchError.invalid("no program given: tandem launch [options] -- PROGRAM [ARGS…]") }
        return config
    }

    /// Waits for the workers; on the first failure or a signal, stops the rest.
    ///
    /// Each worker has a thread blocked in `waitpid` for it, which records the exit the moment it happens, so
    /// the first failure is the one that really came first, not the first one a polling loop happened to reap.
    private static func supervise(_ workers: [Worker], gracePeriod: Double) -> LaunchOutcome {
        var outcome = LaunchOutcome(firstFailure: nil, exitCode: 0)
        let exits = ExitLog()
        let waiters = workers.enumerated().map { index, worker in
            JoinableThread(name: "tandem-wait-\(worker.rank)", stackBytes: 128 << 10) {
                let status = Posix.waitForExit(worker.pid) ?? 0
                exits.append(index, decodeWaitStatus(status))
            }
        }
        var running = Set(workers.indices)
        var stopping = false
        var killDeadline: Deadline?
        var handled = 0
        while !running.isEmpty {
            // Sleeps until a worker exits; wakes every 100 ms to look for a forwarded signal or the kill deadline.
            let events = exits.events(after: handled, waitingUpTo: 0.1)
            handled += events.count
            for (index, ending) in events {
                running.remove(index)
                workers[index].finishOutput()
                if !ending.isSuccess && outcome.firstFailure == nil && !stopping {
                    outcome.firstFailure = WorkerFailure(rank: workers[index].rank, ending: ending)
                    outcome.exitCode = ending.exitCode
                    Posix.writeToStandardError(
                        "tandem launch: rank \(workers[index].rank) (pid \(workers[index].pid)) failed first: it \(ending); stopping the other ranks\n")
                    stopping = true
                }
            }
            let caught = receivedSignal.exchange(0, ordering: .relaxed)
            if caught != 0 {
                Posix.writeToStandardError("tandem launch: received \(signalName(caught)); forwarding it to the workers\n")
                for index in running { workers[index].signal(caught) }
                if outcome.exitCode == 0 { outcome.exitCode = 128 + caught }
                stopping = true
                killDeadline = killDeadline ?? .after(seconds: gracePeriod)
            }
            // Every worker's group, ended or not: a worker that exited may have left children behind.
            if stopping && killDeadline == nil {
                for worker in workers { worker.signal(SIGTERM) }
                killDeadline = .after(seconds: gracePeriod)
            }
            if let deadline = killDeadline, deadline.hasPassed {
                for worker in workers { worker.signal(SIGKILL) }
                killDeadline = .after(seconds: 3600)
            }
        }
        for waiter in waiters { waiter.join() }
        return outcome
    }

    /// Stops already-started workers after a failed start.
    private static func stop(_ workers: [Worker], gracePeriod: Double) {
        for worker in workers { worker.signal(SIGTERM) }
        let deadline = Deadline.after(seconds: gracePeriod)
        for worker in workers {
            var status: Int32 = 0
            while waitpid(worker.pid, &status, WNOHANG) == 0 {
                if deadline.hasPassed { worker.signal(SIGKILL) }
                usleep(5_000)
            }
            worker.finishOutput()
        }
    }

    /// Finds `program` in PATH unless it contains a slash.
    static func resolveProgram(_ program: String) throws -> String {
        if program.contains("/") {
            guard access(program, X_OK) == 0 else { throw LaunchError.invalid("program \(program) does not exist or is not executable") }
            return program
        }
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for directory in path.split(separator: ":") {
            let candidate = "\(directory)/\(program)"
            if access(candidate, X_OK) == 0 { return candidate }
        }
        throw LaunchError.invalid("program '\(program)' not found in PATH")
    }

    /// A port that was free a moment ago (bound to port 0, then released).
    private static func freePort() throws -> UInt16 {
        do {
            let socket = try Socket.listen(host: "0.0.0.0", port: 0)
            defer { socket.close() }
            return socket.localAddress.port
        } catch {
            throw LaunchError.invalid("cannot find a free port: \(error)")
        }
    }
}

/// Worker exits in the order they happened; the supervisor sleeps on it instead of polling, so a launcher
/// on a small machine takes no CPU from its ranks.
private final class ExitLog: @unchecked Sendable {
    private let condition = NSCondition()
    private var entries: [(index: Int, ending: WorkerEnding)] = []

    func append(_ index: Int, _ ending: WorkerEnding) {
        condition.lock()
        entries.append((index, ending))
        condition.broadcast()
        condition.unlock()
    }

    /// The entries after the first `handled`, waiting up to `seconds` for one when there are none yet.
    func events(after handled: Int, waitingUpTo seconds: Double) -> [(index: Int, ending: WorkerEnding)] {
        condition.lock()
        defer { condition.unlock() }
        if entries.count == handled { _ = condition.wait(until: Date(timeIntervalSinceNow: seconds)) }
        return Array(entries[handled...])
    }
}

/// The conventional name of a signal (`SIGKILL`).
func signalName(_ signal: Int32) -> String {
    switch signal {
    case SIGINT: "SIGINT"
    case SIGTERM: "SIGTERM"
    case SIGKILL: "SIGKILL"
    case SIGSEGV: "SIGSEGV"
    case SIGABRT: "SIGABRT"
    case SIGBUS: "SIGBUS"
    case SIGILL: "SIGILL"
    case SIGFPE: "SIGFPE"
    case SIGHUP: "SIGHUP"
    case SIGPIPE: "SIGPIPE"
    case SIGTRAP: "SIGTRAP"
    default: "signal \(signal)"
    }
}
