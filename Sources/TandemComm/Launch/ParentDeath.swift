#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CTandemSystem

/// A process Tandem started (a spawned engine rank, a launched worker) ending with the process that started it.
public enum ParentDeath {
    /// When `TANDEM_PARENT_PID` is set: asks the kernel to kill this process when its parent ends (Linux's
    /// parent-death signal; it survives `exec`), then checks the parent is still that process — it may have
    /// ended before the request was made. Elsewhere the group's liveness checks are what notice.
    ///
    /// - Throws: `ConfigError` for a value that is not a process id, `LaunchError` when the parent is gone.
    public static func follow() throws {
        guard let parent = try TandemEnvironment.parentProcess() else { return }
        _ = tandem_kill_with_parent()
        guard getppid() == parent else { throw LaunchError.invalid("the process that started this one (pid \(parent)) has already exited") }
    }
}
