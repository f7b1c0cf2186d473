import Dispatch
import Hummingbird
import Logging
import ServiceLifecycle
import Synchronization
import TandemEngine

/// `tandem serve`'s processes as one swift-service-lifecycle group: the engine, the HTTP application, and the
/// grace period. On SIGTERM or SIGINT they stop in reverse order — the grace period starts (open requests may
/// finish within it; then the engine aborts them, and each ends with finish reason `abort`), the application
/// stops accepting and waits for its open requests, then the engine stops its ranks. An engine that stops by
/// itself (its restarts gave up) shuts the group down the same way and `run` throws why.
public enum ServerLifecycle {
    /// The engine stopped for good without being asked to.
    public struct EngineStopped: Error, CustomStringConvertible {
        public let reason: String
        public var description: String { "the engine stopped for good: \(reason)" }
    }

    /// Runs until a signal (returns) or the engine stops by itself (throws `EngineStopped`).
    public static func run(application: some ApplicationProtocol, engine: LLMEngine, graceSeconds: Double, logger: Logger = Logger(label: "tandem.serve")) async throws {
        let group = ServiceGroup(
            configuration: .init(
                services: [
                    .init(service: EngineService(engine: engine), failureTerminationBehavior: .gracefullyShutdownGroup, serviceName: "engine"),
                    .init(service: application, serviceName: "http"),
                    .init(
                        service: GracePeriod(engine: engine, seconds: graceSeconds), successTerminationBehavior: .ignore,
                        serviceName: "grace period"),
                ],
                gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }
}

/// Lives as long as the engine: stops it at a graceful shutdown, and fails when it stops by itself.
private struct EngineService: Service {
    let engine: LLMEngine

    func run() async throws {
        let asked = Atomic(false)
        let engine = self.engine
        @Sendable func stop() {
            asked.store(true, ordering: .sequentiallyConsistent)
            // `shutdown` waits for the ranks to exit; not on a cooperative thread.
            DispatchQueue.global().async { engine.shutdown() }
        }
        // A graceful shutdown stops the engine last; a cancelled group (another service failed, such as the
        // HTTP server finding its port taken) stops it at once — either way `stopped()` returns.
        let reason = await withTaskCancellationHandler {
            await withGracefulShutdownHandler { await engine.stopped() } onGracefulShutdown: { stop() }
        } onCancel: {
            stop()
        }
        if !asked.load(ordering: .sequentiallyConsistent) { throw ServerLifecycle.EngineStopped(reason: reason) }
    }
}

/// First to hear of a shutdown: gives open requests `seconds` to finish, then aborts them in the engine.
private struct GracePeriod: Service {
    let engine: LLMEngine
    let seconds: Double

    func run() async throws {
        try await gracefulShutdown()
        let engine = self.engine
        let nanoseconds = UInt64(seconds * 1e9)
        // Outlives this service on purpose: the application's shutdown waits for the requests it ends.
        Task.detached {
            try? await Task.sleep(nanoseconds: nanoseconds)
            engine.abortAll()
        }
    }
}
