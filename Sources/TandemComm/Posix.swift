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

    /// Writes a whole line to stderr with one `write(2)`, ignoring failure (there is nowhere left to report it).
    static func writeToStandardError(_ text: String) {
        var bytes = Array(text.utf8)
        bytes.withUnsafeMutableBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let written = write(2, buffer.baseAddress! + offset, buffer.count - offset)
                if written <= 0 { if written == -1 && errno == EINTR { continue }; return }
                offset += written
            }
        }
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
