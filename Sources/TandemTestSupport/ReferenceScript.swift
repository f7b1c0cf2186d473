import Foundation

/// The independent references under tools/reference (Python: `tokenizers`, numpy, `jinja2`), run as
/// subprocesses by the test targets. `make deps` installs their packages.
public enum ReferenceScript {
    /// tools/reference in the source tree.
    public static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../../tools/reference").standardized

    /// Runs `python3 tools/reference/<script> <arguments>` and returns its standard output.
    ///
    /// - Throws: `Failure` with the script's standard error and the fix when it exits non-zero.
    public static func run(_ script: String, _ arguments: [String]) throws -> Data {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", directory.appendingPathComponent(script).path] + arguments
        let output = Pipe()
        let errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        let errorText = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw Failure(
                description: "python3 \(script) \(arguments.joined(separator: " ")) failed (status \(process.terminationStatus)); "
                    + "`make deps` installs the reference packages:\n\(errorText)")
        }
        return data
    }

    /// A reference that could not run.
    public struct Failure: Error, CustomStringConvertible {
        public let description: String

        public init(description: String) { self.description = description }
    }
}
