#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A failed system call: which call, and the errno it left.
public struct SystemCallError: Error, Equatable, CustomStringConvertible {
    /// The call and, where useful, what it was applied to (`connect(10.0.0.1:29500)`).
    public let call: String
    /// The errno value right after the call (or the call's own code, such as getaddrinfo's).
    public let errno: Int32
    /// The failure in words when `errno` is not an errno value (getaddrinfo's `gai_strerror`); nil: strerror.
    public let reason: String?

    public init(call: String, errno: Int32, reason: String? = nil) {
        self.call = call
        self.errno = errno
        self.reason = reason
    }

    public var description: String {
        if let reason { return "\(call) failed: \(reason)" }
        return "\(call) failed: \(String(cString: strerror(errno))) (errno \(errno))"
    }
}

/// The single place where Tandem issues system calls whose failure it must report: retries `EINTR`,
/// captures `errno` immediately and throws a `SystemCallError` naming the call.
enum Posix {
    /// Runs `body` until it does not fail with `EINTR`; a result of -1 throws.
    @discardableResult
    static func call(_ name: @autoclosure () -> String, _ body: () -> Int32) throws(SystemCallError) -> Int32 {
        while true {
            let result = body()
            if result != -1 { return result }
            let code = errno
            if code == EINTR { continue }
            throw SystemCallError(call: name(), errno: code)
        }
    }

    /// One non-blocking transfer call (`send`, `recv`, `sendmsg`, `readv`, `accept` …): retries `EINTR` (and
    /// `alsoRetrying`), returns nil when the call would block, the call's non-negative result otherwise.
    static func transfer(
        _ name: @autoclosure () -> String, alsoRetrying retried: Int32? = nil, _ body: () -> Int
    ) throws(SystemCallError) -> Int? {
        while true {
            let result = body()
            if result >= 0 { return result }
            let code = errno
            if code == EINTR || code == retried { continue }
            if code == EAGAIN || code == EWOULDBLOCK { return nil }
            throw SystemCallError(call: name(), errno: code)
        }
    }

    /// `poll(2)` of one descriptor (no array to allocate), retrying `EINTR`: probes (`timeout` 0) and single waits.
    static func poll(_ entry: inout pollfd, timeout: Int32) throws(SystemCallError) -> Int {
        while true {
            let ready = systemPoll(&entry, 1, timeout)
            if ready >= 0 { return Int(ready) }
            let code = errno
            if code != EINTR { throw SystemCallError(call: "poll", errno: code) }
        }
    }

    /// `poll(2)` on `entries`, retrying `EINTR` with a fresh `timeout()` (milliseconds, -1 forever) so a signal
    /// never stretches a deadline. Returns the number of ready entries, 0 when the timeout passed.
    static func poll(_ entries: inout [pollfd], timeout: () -> Int32) throws(SystemCallError) -> Int {
        while true {
            let ready = entries.withUnsafeMutableBufferPointer { systemPoll($0.baseAddress, nfds_t($0.count), timeout()) }
            if ready >= 0 { return Int(ready) }
            let code = errno
            if code != EINTR { throw SystemCallError(call: "poll", errno: code) }
        }
    }

    /// Blocks until process `pid` ends and returns its `waitpid` status (retrying `EINTR`); nil when it is not
    /// this process's child (already reaped).
    static func waitForExit(_ pid: pid_t) -> Int32? {
        var status: Int32 = 0
        while true {
            if waitpid(pid, &status, 0) == pid { return status }
            if errno != EINTR { return nil }
        }
    }

    /// Writes all of `bytes` to `descriptor`, retrying `EINTR`; stops quietly on any other failure (for output
    /// whose loss has nowhere left to be reported: stderr, a closed terminal).
    static func writeAll(_ descriptor: Int32, _ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress else { return }
        var offset = 0
        while offset < bytes.count {
            let written = write(descriptor, base + offset, bytes.count - offset)
            if written > 0 {
                offset += written
            } else if written == 0 || errno != EINTR {
                return
            }
        }
    }

    /// Writes a whole line to stderr, ignoring failure (there is nowhere left to report it).
    static func writeToStandardError(_ text: String) {
        Array(text.utf8).withUnsafeBytes { writeAll(2, $0) }
    }

    /// Ignores SIGPIPE for the whole process, so a write to a closed socket returns EPIPE instead of killing
    /// the process (sends also pass MSG_NOSIGNAL where the platform has it).
    static let ignoreBrokenPipe: Void = {
        signal(SIGPIPE, SIG_IGN)
    }()
}

/// A point on the monotonic clock after which an operation gives up.
public struct Deadline: Sendable, Comparable {
    /// Nanoseconds on the monotonic clock.
    public let nanoseconds: UInt64

    /// The current monotonic time.
    public static var now: Deadline { Deadline(nanoseconds: Self.monotonicNanoseconds()) }

    /// The deadline `seconds` from now.
    public static func after(seconds: Double) -> Deadline {
        Deadline(nanoseconds: Self.monotonicNanoseconds() &+ UInt64(max(seconds, 0) * 1e9))
    }

    /// Whether the deadline has passed.
    public var hasPassed: Bool { Self.monotonicNanoseconds() >= nanoseconds }

    /// Seconds left (negative once passed).
    public var remainingSeconds: Double { (Double(nanoseconds) - Double(Self.monotonicNanoseconds())) / 1e9 }

    /// Milliseconds left for `poll(2)`, rounded up, clamped to [0, `cap`].
    func pollTimeout(cappedAt cap: Int32 = Int32.max) -> Int32 {
        let now = Self.monotonicNanoseconds()
        if now >= nanoseconds { return 0 }
        let millis = (nanoseconds - now + 999_999) / 1_000_000
        return Int32(min(UInt64(cap), millis))
    }

    public static func < (lhs: Deadline, rhs: Deadline) -> Bool { lhs.nanoseconds < rhs.nanoseconds }

    static func monotonicNanoseconds() -> UInt64 {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return UInt64(spec.tv_sec) &* 1_000_000_000 &+ UInt64(spec.tv_nsec)
    }
}

// Module-level alias: inside `Posix` the unqualified name resolves to its own `poll`.
@inline(__always) private func systemPoll(_ entries: UnsafeMutablePointer<pollfd>?, _ count: nfds_t, _ timeout: Int32) -> Int32 {
    poll(entries, count, timeout)
}
