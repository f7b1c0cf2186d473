#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// One spawned worker process and the threads that copy its output, line by line, with a rank prefix.
///
/// Each worker leads a process group of its own, so signals reach whatever it started too (a rank run through
/// `bash -c …`): use `signal(_:)`, never `kill(pid)`.
struct Worker {
    let rank: Int
    let pid: pid_t
    private let forwarders: [JoinableThread]

    /// Starts `executable` with `arguments` (argv, including argv[0]) and `environment`.
    ///
    /// - Parameter errors: with `prefixOutput`, an `Error: …` (or usage) line that another worker of the job
    ///   already printed is not printed again (every rank of a job usually fails alike; it is said once).
    static func spawn(
        executable: String, arguments: [String], environment: [String: String], rank: Int, prefixOutput: Bool, errors: ErrorLines? = nil
    ) throws -> Worker {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        var pipes: [(read: Int32, write: Int32)] = []
        if prefixOutput {
            for target in [Int32(1), Int32(2)] {
                var ends: [Int32] = [0, 0]
                guard pipe(&ends) == 0 else { throw LaunchError.spawnFailed(program: executable, errno: errno) }
                _ = fcntl(ends[0], F_SETFD, FD_CLOEXEC)
                posix_spawn_file_actions_adddup2(&actions, ends[1], target)
                posix_spawn_file_actions_addclose(&actions, ends[1])
                pipes.append((ends[0], ends[1]))
            }
        }
        let argv = arguments.map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for pointer in argv { free(pointer) }
            for pointer in envp { free(pointer) }
        }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP))
        var pid: pid_t = 0
        let status = posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
        for ends in pipes { close(ends.write) }
        guard status == 0 else {
            for ends in pipes { close(ends.read) }
            throw LaunchError.spawnFailed(program: executable, errno: status)
        }
        let forwarders = pipes.enumerated().map { index, ends in
            let readEnd = ends.read
            let target: Int32 = index == 0 ? 1 : 2
            return JoinableThread(name: "tandem-output-\(rank)", stackBytes: 256 << 10) {
                forwardLines(from: readEnd, to: target, prefix: "[rank\(rank)]: ", errors: errors)
                close(readEnd)
            }
        }
        return Worker(rank: rank, pid: pid, forwarders: forwarders)
    }

    /// Sends `signal` to the worker's process group: the worker and everything it started.
    func signal(_ signal: Int32) {
        kill(-pid, signal)
    }

    /// Waits until the worker's output has been copied out (its pipes closed).
    func finishOutput() {
        for thread in forwarders { thread.join() }
    }
}

/// Copies `source` to `target`, writing each complete line with `prefix` in a single `write(2)` so lines from
/// different ranks never interleave; a last line without a newline is flushed at EOF.
private func forwardLines(from source: Int32, to target: Int32, prefix: String, errors: ErrorLines?) {
    let prefixBytes = Array(prefix.utf8)
    var pending: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 64 << 10)
    func emit(_ line: ArraySlice<UInt8>, complete: Bool = true) {
        if let errors, ErrorLines.markers.contains(where: { line.starts(with: $0) }), !errors.isFirst(Array(line), complete: complete) { return }
        var output = prefixBytes
        output.append(contentsOf: line)
        output.append(10)
        output.withUnsafeBytes { Posix.writeAll(target, $0) }
    }
    while true {
        // A blocking pipe: nil (would block) cannot happen; an error ends the stream like EOF.
        guard let count = try? Posix.transfer("read", { read(source, &buffer, buffer.count) }), count > 0 else { break }
        pending.append(contentsOf: buffer[0..<count])
        var start = 0
        while let newline = pending[start...].firstIndex(of: 10) {
            emit(pending[start..<newline])
            start = newline + 1
        }
        pending.removeFirst(start)
    }
    if !pending.isEmpty { emit(pending[...], complete: false) }
}

/// The `Error: …` lines (and the usage lines that follow a usage error) a job's workers have printed, so each
/// distinct one is printed once.
final class ErrorLines: @unchecked Sendable {
    static let markers = ["Error: ", "Usage: ", "  See '"].map { Array($0.utf8) }
    private let lock = NSLock()
    private var seen: Set<[UInt8]> = []

    /// Whether `line` is printed for the first time (and records it). An incomplete line — the last one of a rank
    /// stopped while it printed, which the launcher stops once another rank failed — counts as printed when a line
    /// seen before starts with it: it is that same error, cut short.
    func isFirst(_ line: [UInt8], complete: Bool = true) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        if !complete && seen.contains(where: { $0.starts(with: line) }) { return false }
        return seen.insert(line).inserted
    }
}
