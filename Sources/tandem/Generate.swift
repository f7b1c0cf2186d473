import ArgumentParser
import Foundation
import TandemEngine
import TandemModel

/// `tandem generate`: completions for prompts, like vLLM's offline `LLM.generate`.
struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Generate completions for prompts from a Hugging Face checkpoint, optionally split over --tp × --pp ranks.",
        discussion: """
            With --tp T --pp P and no launcher, Tandem starts T × P local ranks itself; under `tandem launch` each process \
            is one rank and the world size must equal T × P. Every rank computes the same tokens; rank 0 prints them.
            """)

    @OptionGroup var modelOptions: ModelOptions

    @Option(help: "A prompt (repeat for a batch).")
    var prompt: [String] = []

    @Option(name: .customLong("max-tokens"), help: "The most tokens to generate per prompt.")
    var maxTokens: Int = 16

    @Option(help: "0 is greedy.")
    var temperature: Float = 1

    @Option(name: .customLong("top-p"), help: "Nucleus sampling: keep the most likely tokens up to this probability.")
    var topP: Float = 1

    @Option(name: .customLong("top-k"), help: "Keep the k most likely tokens (0: all).")
    var topK: Int = 0

    @Option(help: "Seed for sampling (default: random).")
    var seed: UInt64?

    @Option(help: "A string that ends a completion (repeatable); the text stops before it. \\n, \\t, \\r and \\\\ stand for a newline, a tab, a carriage return and a backslash.")
    var stop: [String] = []

    @Option(name: .customLong("stop-token-id"), help: "A token id that ends a completion (repeatable).")
    var stopTokenID: [Int] = []

    @Flag(name: .customLong("ignore-eos"), help: "Keep generating past end-of-sequence tokens.")
    var ignoreEOS = false

    @Option(help: "With --json: each generated token's log-probability and those of the N most likely tokens (0…20).")
    var logprobs: Int?

    @Flag(help: "Print {\"outputs\": [...], \"timings\": {...}} as JSON.")
    var json = false

    @Flag(help: "Print the text as it is generated (one prompt, not with --json).")
    var stream = false

    var samplingParams: SamplingParams {
        get throws {
            SamplingParams(
                temperature: temperature, topP: topP, topK: topK, seed: seed, maxTokens: maxTokens, stop: try stop.map(Self.unescaped),
                stopTokenIDs: stopTokenID, ignoreEOS: ignoreEOS, logprobs: logprobs)
        }
    }

    func validate() throws {
        guard !prompt.isEmpty else { throw ValidationError("give at least one --prompt") }
        if logprobs != nil && !json { throw ValidationError("--logprobs adds the log-probabilities to --json's outputs: give --json too") }
        if stream && (prompt.count > 1 || json) { throw ValidationError("--stream prints one prompt's text as it comes: give one --prompt and no --json") }
        do { try samplingParams.validate() } catch { throw ValidationError("\(error)") }
    }

    /// `--stop`'s text with `\n`, `\t`, `\r` and `\\` read as the characters they stand for (a shell passes
    /// `"\n\n"` as backslash-n twice; that is what users mean by it).
    ///
    /// - Throws: `ValidationError` for another escape or a lone backslash at the end.
    static func unescaped(_ text: String) throws -> String {
        var result = ""
        var escaping = false
        for character in text {
            if escaping {
                switch character {
                case "n": result.append("\n")
                case "t": result.append("\t")
                case "r": result.append("\r")
                case "\\": result.append("\\")
                default: throw ValidationError("--stop \(text.debugDescription): unknown escape \\\(character); use \\n, \\t, \\r or \\\\")
                }
                escaping = false
            } else if character == "\\" {
                escaping = true
            } else {
                result.append(character)
            }
        }
        guard !escaping else { throw ValidationError("--stop \(text.debugDescription) ends with a lone backslash; write \\\\ for one") }
        return result
    }

    func run() throws {
        try modelOptions.run { llm, reports in
            var onDelta: ((StreamDelta) -> Void)?
            if stream && reports {
                onDelta = { delta in
                    print(delta.text, terminator: delta.finishReason == nil ? "" : "\n")
                    fflush(nil)
                }
            }
            let outputs = try llm.generate(prompt, try samplingParams, onDelta: onDelta)
            guard reports else { return }
            let timings = llm.lastTimings
            if json {
                let report = GenerateReport(
                    outputs: outputs,
                    timings: .init(
                        loadSeconds: llm.loadSeconds, prefillTokensPerSecond: timings.prefillTokensPerSecond,
                        decodeTokensPerSecond: timings.decodeTokensPerSecond))
                print(try jsonLine(report))
            } else {
                if !stream {
                    for output in outputs {
                        print("prompt: \(output.prompt.debugDescription)")
                        print("output: \(output.text.debugDescription)  [\(output.tokenIDs.count) tokens, \(output.finishReason.rawValue)]")
                    }
                }
                let line = String(
                    format: "load %.2f s, prefill %.1f tokens/s, decode %.1f tokens/s (tp %d, pp %d, dp %d)", llm.loadSeconds,
                    timings.prefillTokensPerSecond, timings.decodeTokensPerSecond, modelOptions.tp, modelOptions.pp, modelOptions.dp)
                // With --stream, standard output is the text alone (pipeable); the timing goes to standard error.
                if stream { FileHandle.standardError.write(Data((line + "\n").utf8)) } else { print(line) }
            }
            fflush(nil)
        }
    }
}

/// What `tandem generate --json` prints.
struct GenerateReport: Encodable {
    struct Timings: Encodable {
        let loadSeconds: Double
        let prefillTokensPerSecond: Double
        let decodeTokensPerSecond: Double

        enum CodingKeys: String, CodingKey {
            case loadSeconds = "load_s", prefillTokensPerSecond = "prefill_tokens_per_s", decodeTokensPerSecond = "decode_tokens_per_s"
        }
    }

    let outputs: [RequestOutput]
    let timings: Timings
}
