#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import Synchronization

/// A world whose rank 0 is this process and whose other ranks are child processes it starts on this host — how
/// an engine brings up its own workers (as mini-SGLang's launcher starts its scheduler processes), where
/// `ProcessLauncher` starts every rank as a peer.
///
/// This process hosts the store on 127.0.0.1 (a fresh port, a fresh job token), spawns `program` once per rank
/// 1..<worldSize with torchrun's variables set, and builds the world group with them. Each child ends the moment
/// this process does: `joinAsChild()` sets a parent-death signal on Linux (`TANDEM_PARENT_PID` tells it whom to
/// watch). A child that ends before the group is up stops the setup at once, with its exit status in the error,
/// rather than leaving rank 0 waiting for its timeout.
public final class SpawnedRanks: @unchecked Sendable {
    /// The world: this process is rank 0.
    public let group: ProcessGroup
    private let children: [Worker]
    private let server: TCPStoreServer
    private let waiters: [JoinableThread]
    private let endings: ChildEndings
    private let stopped = Mutex(false)

    /// Starts ranks 1..<`worldSize` as `program arguments…` and forms the world with them.
    ///
    /// - Parameters:
    ///   - program: an executable path (or a name looked up in PATH).
    ///   - arguments: the children's arguments (without argv[0]).
    ///   - options: the group's settings; a missing token is generated.
    ///   - gracePeriod: seconds between SIGTERM and SIGKILL when the children are stopped.
    /// - Throws: `LaunchError` for a bad world size, a program that cannot start, or a child that ended before
    ///   joining (its rank and exit status named); `StoreError`/`CommError` when the group cannot form.
    public init(
        worldSize: Int, program: String, arguments: [String], options: ProcessGroupOptions = ProcessGroupOptions(), gracePeriod: Double = 5
    ) throws {
        guard worldSize >= 2 else { throw LaunchError.invalid("spawned ranks need a world of at least 2, got \(worldSize)") }
        let executable = try ProcessLauncher.resolveProgram(program)
        var settings = options
        if settings.token?.isEmpty ?? true { settings.token = ThreadLauncher.makeToken() }
        let token = settings.token!
        let server = try TCPStoreServer(host: "127.0.0.1", port: 0, token: token)
        self.server = server
        self.gracePeriod = gracePeriod
        // Connected before any child starts, so a store stopped by a child's early exit fails its requests at once.
        let store: TCPStore
        do {
            store = try TCPStore(host: "127.0.0.1", port: server.port, token: token, timeout: settings.timeout)
        } catch {
            server.stop()
            throw error
        }
        var environment = ProcessInfo.processInfo.environment
        environment["MASTER_ADDR"] = "127.0.0.1"
        environment["MASTER_PORT"] = String(server.port)
        environment["WORLD_SIZE"] = String(worldSize)
        environment["LOCAL_WORLD_SIZE"] = String(worldSize)
        environment[TandemEnvironment.jobToken.name] = token
        environment[TandemEnvironment.parentPID.name] = String(getpid())
        let endings = ChildEndings()
        self.endings = endings
        settings.setupAbandoned = { endings.all.keys.min().map { "rank \($0) ended before joining" } }
        // Each child is spawned by a thread that then waits for it in waitpid: the parent-death signal fires
        // when the spawning *thread* ends, so that thread must live exactly as long as the child (a caller's
        // thread — a pool thread of Swift concurrency — may end any time). A child that ends before the group is
        // up stops the store, which fails rank 0's setup at once.
        var children: [Worker] = []
        var waiters: [JoinableThread] = []
        // After a failed start: kill what runs, reap it, collect its output, stop the store.
        func abandon() {
            for child in children { child.signal(SIGKILL) }
            for waiter in waiters { waiter.join() }
            for child in children { child.finishOutput() }
            server.stop()
        }
        for rank in 1..<worldSize {
            environment["RANK"] = String(rank)
            environment["LOCAL_RANK"] = String(rank)
            let started = SpawnResult()
            let childEnvironment = environment
            waiters.append(
                JoinableThread(name: "tandem-wait-\(rank)", stackBytes: 128 << 10) {
                    let child: Worker
                    do {
                        child = try Worker.spawn(
                            executable: executable, arguments: [program] + arguments, environment: childEnvironment, rank: rank, prefixOutput: true)
                    } catch {
                        started.set(.failure(error))
                        return
                    }
                    started.set(.success(child))
                    let status = Posix.waitForExit(child.pid) ?? 0
                    if !endings.record(child.rank, decodeWaitStatus(status)) { server.stop() }
                })
            switch started.get() {
            case let .success(child):
                children.append(child)
            case let .failure(error):
                abandon()
                throw error
            }
        }
        self.children = children
        self.waiters = waiters
        do {
            group = try ProcessGroup(store: store, rank: 0, worldSize: worldSize, name: "world", options: settings)
            endings.groupFormed()
        } catch {
            // Which children had ended on their own, before they are killed here.
            let ended = endings.all
            abandon()
            if let rank = ended.keys.sorted().first(where: { !ended[$0]!.isSuccess }) ?? ended.keys.min() {
                throw LaunchError.rankEndedEarly(rank: rank, ending: ended[rank]!)
            }
            throw error
        }
    }

    private let gracePeriod: Double

    deinit { stop() }

    /// The process ids of ranks 1, 2, ….
    public var childPIDs: [pid_t] { children.map(\.pid) }

    /// The first child (lowest rank) that has ended, and how; nil while all run. After a collective fails with a
    /// dead peer, this says how the peer died.
    public var firstEnded: WorkerFailure? {
        let ended = endings.all
        return ended.keys.min().map { WorkerFailure(rank: $0, ending: ended[$0]!) }
    }

    /// `firstEnded`, waiting up to `seconds` for one: after a collective failed because a peer vanished, its
    /// exit status arrives a moment later.
    public func firstEnded(within seconds: Double) -> WorkerFailure? {
        let deadline = Deadline.after(seconds: seconds)
        while true {
            if let ended = firstEnded { return ended }
            if deadline.hasPassed { return nil }
            usleep(2_000)
        }
    }

    /// Waits up to the grace period for the children to end (after they were told to, e.g. by a shutdown
    /// message), then SIGTERMs and, after another grace period, SIGKILLs the rest; reaps them, collects their
    /// output, stops the store and shuts the group down. Idempotent.
    public func stop() {
        guard !stopped.withLock({ done in defer { done = true }; return done }) else { return }
        let deadline = Deadline.after(seconds: gracePeriod)
        while endings.all.count < children.count && !deadline.hasPassed { usleep(5_000) }
        let running = children.filter { endings.all[$0.rank] == nil }
        for child in running { child.signal(SIGTERM) }
        let killDeadline = Deadline.after(seconds: gracePeriod)
        while endings.all.count < children.count && !killDeadline.hasPassed { usleep(5_000) }
        for child in children where endings.all[child.rank] == nil { child.signal(SIGKILL) }
        for waiter in waiters { waiter.join() }
        for child in children { child.finishOutput() }
        group.shutdown()
        server.stop()
    }

    /// Joins the world as a child of a `SpawnedRanks` (torchrun's variables and the job token are in the
    /// environment): first arranges to die with the parent named by `TANDEM_PARENT_PID` (a parent-death signal
    /// on Linux; elsewhere the group's liveness checks notice), then forms the group.
    ///
    /// - Throws: `ConfigError` for a missing or invalid variable, `LaunchError` when the parent is already gone,
    ///   and what `ProcessGroup.initialize` throws.
    public static func joinAsChild() throws -> ProcessGroup {
        try ParentDeath.follow()
        return try ProcessGroup.initializeFromEnvironment()
    }
}

/// How each spawned child ended, recorded by its waiter thread, and whether the group had formed by then.
private final class ChildEndings: Sendable {
    private let state = Mutex<(endings: [Int: WorkerEnding], formed: Bool)>(([:], false))

    /// Records `rank`'s ending; returns whether the group had already formed.
    func record(_ rank: Int, _ ending: WorkerEnding) -> Bool {
        state.withLock { state in
            state.endings[rank] = ending
            return state.formed
        }
    }

    func groupFormed() { state.withLock { $0.formed = true } }

    var all: [Int: WorkerEnding] { state.withLock { $0.endings } }
}

/// A spawner thread's result, handed to the thread that waits for it.
private final class SpawnResult: @unchecked Sendable {
    private let condition = NSCondition()
    private var result: Result<Worker, any Error>?

    func set(_ value: Result<Worker, any Error>) {
        condition.lock()
        result = value
        condition.broadcast()
        condition.unlock()
    }

    func get() -> Result<Worker, any Error> {
        condition.lock()
        defer { condition.unlock() }
        while result == nil { condition.wait() }
        return result!
    }
}

/// How `waitpid` says a process ended.
func decodeWaitStatus(_ status: Int32) -> WorkerEnding {
    let signalNumber = status & 0x7F
    if signalNumber == 0 { return .exited(code: (status >> 8) & 0xFF) }
    return .signaled(signal: signalNumber)
}
