import ArgumentParser
import Foundation
import TandemComm
import TandemEngine
import Synchronization
import TandemServer

/// `tandem serve`: the OpenAI-compatible HTTP server over an engine of `--tp` × `--pp` ranks.
struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve a model over OpenAI's HTTP API (/v1/completions, /v1/chat/completions, /v1/models, /health, /version).",
        discussion: """
            Spawns the --tp × --pp ranks as `generate` does, then listens on --host:--port (127.0.0.1:8000 by default; \
            --host 0.0.0.0 for every interface). With --api-key (or TANDEM_API_KEY), /v1 requests must carry \
            `Authorization: Bearer <key>`. When a rank dies, the requests it was running end with a 503 (or an error \
            event), /health answers 503, and the ranks are started again (the first restart at once, then backing off \
            from 1 s to 30 s); requests that had not started wait and run after it. After --max-restarts restarts in a \
            row without 60 s of running between them, serve exits with the cause. SIGTERM or Ctrl-C stops accepting, \
            gives open requests --shutdown-grace seconds, aborts what is left and stops the ranks.
            """)

    @OptionGroup var modelOptions: ModelOptions

    @Option(name: .customLong("served-model-name"), help: "The model name clients ask for (default: the checkpoint directory's name).")
    var servedModelName: String?

    @Option(help: "Address to listen on.")
    var host = "127.0.0.1"

    @Option(help: "Port to listen on (0 picks a free one).")
    var port = 8000

    @Option(name: .customLong("api-key"), help: "Require this key on /v1 requests (default: TANDEM_API_KEY, or none).")
    var apiKey: String?

    @Option(name: .customLong("max-restarts"), help: "Restarts of the ranks in a row before giving up (0: exit when a rank dies).")
    var maxRestarts = 5

    @Option(name: .customLong("shutdown-grace"), help: "Seconds open requests may run after SIGTERM before they are aborted.")
    var shutdownGrace = 10.0

    func validate() throws {
        guard maxRestarts >= 0 else { throw ValidationError("--max-restarts must be ≥ 0, got \(maxRestarts)") }
        guard shutdownGrace >= 0, shutdownGrace.isFinite else { throw ValidationError("--shutdown-grace must be ≥ 0 seconds, got \(shutdownGrace)") }
        guard (0...65535).contains(port) else { throw ValidationError("--port must be in 0...65535, got \(port)") }
        if let apiKey, apiKey.isEmpty { throw ValidationError("--api-key must not be empty") }
    }

    func run() throws {
        guard !Rendezvous.isLaunched() else {
            throw CommandFailure("tandem serve spawns its own ranks (--tp T --pp P --dp D); start it as one process, not under tandem launch, mpirun or srun with several tasks")
        }
        let template: ModelTemplate
        do {
            template = try ModelTemplate(model: modelOptions.model)
        } catch {
            throw CommandFailure("\(modelOptions.model): \(error)")
        }
        let name = servedModelName ?? URL(fileURLWithPath: modelOptions.model).standardizedFileURL.lastPathComponent
        let engine = try LLMEngine(
            config: try modelOptions.engineConfig, tensorParallelSize: modelOptions.tp, workerProgram: WorkerProgram(path: selfExecutable(), arguments: ["worker"]),
            restart: RestartPolicy(maxRestarts: maxRestarts))
        defer { engine.shutdown() }
        guard let tokenizer = engine.tokenizer else { throw CommandFailure("the engine has no tokenizer") }
        let serving = OpenAIServing(
            engine: engine, tokenizer: tokenizer, modelName: name, chatTemplate: template.template, specialTokens: template.specialTokens,
            contextLength: engine.modelConfig.maxPositions)
        let options = ServerOptions(host: host, port: port, apiKey: apiKey ?? TandemEnvironment.apiKey.value)
        let host = self.host
        let application = HTTPServer.application(
            serving: serving, options: options, healthy: { engine.state == .running },
            onRunning: { port in
                FileHandle.standardError.write(Data("tandem serve: \(name) on http://\(host):\(port) (tp \(modelOptions.tp), pp \(modelOptions.pp), dp \(modelOptions.dp)\(template.template == nil ? ", no chat template" : ""))\n".utf8))
            })
        let done = DispatchSemaphore(value: 0)
        let failure = Mutex<(any Error)?>(nil)
        let grace = shutdownGrace
        Task {
            do {
                try await ServerLifecycle.run(application: application, engine: engine, graceSeconds: grace)
            } catch {
                failure.withLock { $0 = error }
            }
            done.signal()
        }
        done.wait()
        if let error = failure.withLock({ $0 }) { throw CommandFailure("\(error)") }
    }
}
