/// Minimal leveled logging to stderr, filtered by `TANDEM_LOG_LEVEL`.
///
/// Lines are written whole with one `write(2)` so that ranks sharing a terminal do not interleave mid-line.
public enum Log {
    /// Severity, lowest first.
    public enum Level: Int, Sendable, Comparable {
        case debug, info, warning, error

        public static func < (lhs: Level, rhs: Level) -> Bool { lhs.rawValue < rhs.rawValue }

        /// `TANDEM_LOG_LEVEL`'s level (warning when unset).
        ///
        /// - Throws: `ConfigError` for a value that is not a level's name.
        public static func fromEnvironment() throws(ConfigError) -> Level {
            guard let text = TandemEnvironment.logLevel.value else { return .warning }
            guard let level = [Level.debug, .info, .warning, .error].first(where: { $0.label == text.lowercased() }) else {
                throw .invalidValue(name: TandemEnvironment.logLevel.name, value: text, expected: "debug, info, warning or error")
            }
            return level
        }

        fileprivate var label: String {
            switch self {
            case .debug: "debug"
            case .info: "info"
            case .warning: "warning"
            case .error: "error"
            }
        }
    }

    /// The level below which messages are dropped, read once from `TANDEM_LOG_LEVEL` (warning when unset;
    /// programs refuse an invalid value at start with `TandemEnvironment.checkValues()`).
    public static let threshold: Level = (try? Level.fromEnvironment()) ?? .warning

    /// Writes `message` when `level` is at or above the threshold.
    public static func write(_ level: Level, _ message: @autoclosure () -> String) {
        guard level >= threshold else { return }
        let line = "tandem \(level.label): \(message())\n"
        Posix.writeToStandardError(line)
    }

    /// Logs at debug level.
    public static func debug(_ message: @autoclosure () -> String) { write(.debug, message()) }
    /// Logs at info level.
    public static func info(_ message: @autoclosure () -> String) { write(.info, message()) }
    /// Logs at warning level.
    public static func warning(_ message: @autoclosure () -> String) { write(.warning, message()) }
    /// Logs at error level.
    public static func error(_ message: @autoclosure () -> String) { write(.error, message()) }
}

