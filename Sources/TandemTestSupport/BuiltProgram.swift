import Foundation
import XCTest

/// Test support (used by the test targets only): runs the built `tandem` binaries (beside the test bundle)
/// and captures their output.
public enum BuiltProgram {
    /// The directory holding the package's built executables.
    public static var directory: URL {
        let executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return URL(fileURLWithPath: executable).deletingLastPathComponent()
    }

    public static var tandem: String { directory.appendingPathComponent("tandem").path }
    public static var worker: String { directory.appendingPathComponent("tandem-test-worker").path }
    public static var shaper: String { directory.appendingPathComponent("tandem-shaper").path }

    public struct Run {
        public let status: Int32
        public let output: String
        public let seconds: Double

        /// Output lines (stdout and stderr merged) that contain `marker`.
        public func lines(containing marker: String) -> [String] {
            output.split(separator: "\n").map(String.init).filter { $0.contains(marker) }
        }
    }

    /// Serialises `Process.run` (see `run`).
    private static let launching = NSLock()

    /// Runs `path` with `arguments`, merging stdout and stderr; kills it after `timeout` seconds.
    public static func run(_ path: String, _ arguments: [String], environment: [String: String] = [:], timeout: Double = 120,
                    whileRunning: ((Process) -> Void)? = nil) throws -> Run {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        var merged = ProcessInfo.processInfo.environment
        for (key, value) in environment { merged[key] = value }
        process.environment = merged
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        let start = Date()
        // swift-corelibs-foundation's Process.run is not safe to call from two threads at once (it crashed in a
        // memcpy when both pretend hosts of a multi-host test started their launchers together).
        try launching.withLock { try process.run() }
        let collector = OutputCollector(pipe.fileHandleForReading)
        whileRunning?(process)
        let deadline = Date(timeIntervalSinceNow: timeout)
        while process.isRunning && Date() < deadline { usleep(10_000) }
        if process.isRunning {
            process.interrupt()
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            XCTFail("\(path) \(arguments.joined(separator: " ")) did not finish within \(timeout) s")
        }
        process.waitUntilExit()
        let seconds = Date().timeIntervalSince(start)
        return Run(status: process.terminationStatus, output: collector.finish(), seconds: seconds)
    }
}

/// Reads a pipe on a background thread until EOF.
final class OutputCollector: @unchecked Sendable {
    private var data = Data()
    private let done = DispatchSemaphore(value: 0)

    init(_ handle: FileHandle) {
        Thread { [self] in
            data = handle.readDataToEndOfFile()
            done.signal()
        }.start()
    }

    func finish() -> String {
        done.wait()
        return String(decoding: data, as: UTF8.self)
    }
}
