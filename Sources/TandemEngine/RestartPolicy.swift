/// How `LLMEngine` answers a rank that dies: start the ranks again, backing off when they keep dying.
///
/// A restart is counted in a streak; the streak starts again once the engine has run `stableSeconds` since its
/// last start. The first restart of a streak starts at once, each next one waits twice as long as the one
/// before (from `initialBackoffSeconds`, at most `maxBackoffSeconds`). A restart whose load fails counts as the
/// next restart of the streak. When a streak would pass `maxRestarts`, the engine stops for good with the cause.
public struct RestartPolicy: Sendable, Equatable {
    /// Restarts allowed in one streak; 0 never restarts (a dead rank stops the engine).
    public var maxRestarts: Int
    public var initialBackoffSeconds: Double
    public var maxBackoffSeconds: Double
    /// Seconds of running after which a death starts a new streak.
    public var stableSeconds: Double

    /// Never restart.
    public static let never = RestartPolicy(maxRestarts: 0)

    public init(maxRestarts: Int, initialBackoffSeconds: Double = 1, maxBackoffSeconds: Double = 30, stableSeconds: Double = 60) {
        (self.maxRestarts, self.initialBackoffSeconds, self.maxBackoffSeconds, self.stableSeconds) =
            (maxRestarts, initialBackoffSeconds, maxBackoffSeconds, stableSeconds)
    }

    /// Seconds to wait before restart number `attempt` (1-based) of a streak.
    public func delay(beforeAttempt attempt: Int) -> Double {
        guard attempt > 1 else { return 0 }
        var delay = initialBackoffSeconds
        for _ in 2..<attempt where delay < maxBackoffSeconds { delay *= 2 }
        return min(delay, maxBackoffSeconds)
    }
}
