import Foundation
import TandemComm
import TandemModel

/// The program an engine spawns for its other ranks: it must call `LLM.runSpawnedWorker()` (`tandem worker`
/// does).
public struct WorkerProgram: Sendable, Equatable {
    /// An executable path, or a name looked up in PATH.
    public var path: String
    /// Its arguments (without argv[0]).
    public var arguments: [String]

    public init(path: String, arguments: [String]) {
        self.path = path
        self.arguments = arguments
    }

    /// `tandem worker`, with the `tandem` executable beside the running program (the CLI itself, or the test
    /// bundle in the build directory), else the one in PATH.
    public static let tandem = WorkerProgram(path: "tandem", arguments: ["worker"])

    /// `path` as an executable file: a bare `tandem` is first looked for beside the running program.
    func resolvedPath() throws -> String {
        guard !path.contains("/") else { return path }
        #if os(Linux)
        if let running = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            let beside = ((running as NSString).deletingLastPathComponent as NSString).appendingPathComponent(path)
            if access(beside, X_OK) == 0 { return beside }
        }
        #endif
        return path
    }
}

extension LLM {
    /// The whole life of a spawned worker rank (`tandem worker`): joins the world of the engine that spawned this
    /// process, receives its `EngineConfig`, loads this rank's part, reports whether it did, and runs the
    /// driver's step plans until the engine shuts down.
    ///
    /// - Throws: `ConfigError`/`LaunchError` when this process was not spawned by an engine or its engine is
    ///   gone, `EngineError.rankFailed` when this or another rank could not load (the driver reports it; the
    ///   worker need not), `CommError` when the driver dies.
    public static func runSpawnedWorker() throws {
        let world = try SpawnedRanks.joinAsChild()
        defer { world.shutdown() }
        let config: EngineConfig = try world.broadcastObject(nil, source: 0)
        let llm = try LLM(config: config, world: world)
        try llm.serve()
    }
}

extension Result {
    /// The error's description, or nil for a success.
    var failureDescription: String? {
        if case let .failure(error) = self { return "\(error)" }
        return nil
    }
}
