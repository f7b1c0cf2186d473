import Foundation

/// Runs one closure per rank on threads of this process, each with its own real TCP process group — for
/// tests and for embedding several ranks in one program.
public enum ThreadLauncher {
    /// Generates a fresh random job token.
    public static func makeToken() -> String {
        (0..<32).map { _ in String(UInt8.random(in: 0...255), radix: 16) }.joined()
    }

    /// Starts a store on loopback, runs `body` on `worldSize` threads with a group each, and returns each
    /// rank's outcome in rank order. Groups are shut down when their body returns.
    ///
    /// - Parameters:
    ///   - worldSize: the number of ranks (threads).
    ///   - options: group options; the token is generated when nil.
    ///   - perRank: adjusts the options of one rank (e.g. a host identity per rank, to fake several hosts).
    ///   - body: the work of one rank; it may throw.
    public static func run<Value: Sendable>(
        worldSize: Int, options: ProcessGroupOptions = ProcessGroupOptions(),
        perRank: (@Sendable (_ rank: Int, _ options: inout ProcessGroupOptions) -> Void)? = nil,
        _ body: @escaping @Sendable (ProcessGroup) throws -> Value
    ) throws -> [Result<Value, any Error>] {
        var settings = options
        if settings.token == nil { settings.token = makeToken() }
        let token = settings.token!
        let server = try TCPStoreServer(host: "127.0.0.1", port: 0, token: token)
        defer { server.stop() }
        let outcomes = OutcomeSlots<Value>(count: worldSize)
        let fixedSettings = settings
        let threads = (0..<worldSize).map { rank in
            JoinableThread(name: "tandem-rank-\(rank)", stackBytes: 4 << 20) {
                outcomes.set(rank, Result { () throws -> Value in
                    let store = try TCPStore(host: "127.0.0.1", port: server.port, token: token, timeout: fixedSettings.timeout)
                    var rankSettings = fixedSettings
                    perRank?(rank, &rankSettings)
                    let group = try ProcessGroup(store: store, rank: rank, worldSize: worldSize, options: rankSettings)
                    defer { group.shutdown() }
                    return try body(group)
                })
            }
        }
        for thread in threads { thread.join() }
        return outcomes.values
    }
}

/// Per-rank results written by the rank threads.
private final class OutcomeSlots<Value: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var slots: [Result<Value, any Error>?]

    init(count: Int) { slots = Array(repeating: nil, count: count) }

    func set(_ index: Int, _ value: Result<Value, any Error>) {
        lock.lock()
        slots[index] = value
        lock.unlock()
    }

    var values: [Result<Value, any Error>] {
        lock.lock()
        defer { lock.unlock() }
        return slots.map { $0! }
    }
}
