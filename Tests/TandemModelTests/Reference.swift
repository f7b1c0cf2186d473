import Foundation
import TandemTestSupport
import XCTest

/// The independent references under tools/reference (Python: the `tokenizers` package, numpy), run as
/// subprocesses. `make deps` installs their packages; a missing package fails the test with the fix.
enum Reference {
    /// Runs `python3 tools/reference/<script> <arguments>` and returns its standard output.
    static func python(_ script: String, _ arguments: [String]) throws -> Data {
        try ReferenceScript.run(script, arguments)
    }

    /// A fresh temporary directory, removed when the test ends.
    static func temporaryDirectory(_ test: XCTestCase) throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("tandem-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        test.addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url
    }
}
