import Foundation
import Synchronization
import TandemComm
import TandemTestSupport
import XCTest

/// The paths users take: `tandem make-model`, then `tandem generate` on one rank, with --tp 2 (Tandem spawns
/// the ranks through its launcher) and under `tandem launch` — the same greedy tokens every way.
final class GenerateCommandTests: XCTestCase {
    private struct Report: Decodable {
        struct Output: Decodable {
            let prompt: String
            let prompt_token_ids: [Int]
            let token_ids: [Int]
            let text: String
            let finish_reason: String
        }
        struct Timings: Decodable {
            let load_s: Double
            let prefill_tokens_per_s: Double
            let decode_tokens_per_s: Double
        }
        let outputs: [Output]
        let timings: Timings
    }

    private var directory: String!

    override func setUpWithError() throws {
        directory = try Reference.temporaryDirectory(self).appendingPathComponent("tiny").path
        let made = try BuiltProgram.run(BuiltProgram.tandem, ["make-model", "--out", directory, "--preset", "tiny", "--seed", "3"])
        XCTAssertEqual(made.status, 0, made.output)
    }

    private let generateArguments = [
        "--prompt", "Hello world", "--prompt", "Tensor parallelism splits each layer", "--max-tokens", "12", "--temperature", "0",
        "--ignore-eos", "--json", "--threads", "1",
    ]

    private func generate(_ prefix: [String] = [], model: String? = nil, tp: Int, _ options: [String] = []) throws -> Report {
        let run = try BuiltProgram.run(BuiltProgram.tandem, prefix + ["generate", "--model", model ?? directory, "--tp", String(tp)] + options + generateArguments)
        XCTAssertEqual(run.status, 0, run.output)
        let line = try XCTUnwrap(run.output.split(separator: "\n").first { $0.hasPrefix("{") }, run.output)
        return try JSONDecoder().decode(Report.self, from: Data(line.utf8))
    }

    func testGenerateGivesTheSameTokensOnOneRankSpawnedRanksAndUnderLaunch() throws {
        let single = try generate(tp: 1)
        XCTAssertEqual(single.outputs.map(\.prompt), ["Hello world", "Tensor parallelism splits each layer"])
        XCTAssertEqual(single.outputs.map(\.token_ids.count), [12, 12])
        XCTAssertEqual(single.outputs.map(\.finish_reason), ["length", "length"])
        XCTAssertGreaterThan(single.timings.decode_tokens_per_s, 0)
        XCTAssertGreaterThan(single.timings.prefill_tokens_per_s, 0)

        let spawned = try generate(tp: 2)
        XCTAssertEqual(spawned.outputs.map(\.token_ids), single.outputs.map(\.token_ids))
        XCTAssertEqual(spawned.outputs.map(\.text), single.outputs.map(\.text))

        let launched = try generate(["launch", "--nproc-per-node", "2", "--no-prefix", "--", BuiltProgram.tandem], tp: 2)
        XCTAssertEqual(launched.outputs.map(\.token_ids), single.outputs.map(\.token_ids))

        // Pipeline stages: spawned, and tp 2 × pp 2 under the launcher.
        let staged = try generate(tp: 1, ["--pp", "2"])
        XCTAssertEqual(staged.outputs.map(\.token_ids), single.outputs.map(\.token_ids))
        let hybrid = try generate(["launch", "--nproc-per-node", "4", "--no-prefix", "--", BuiltProgram.tandem], tp: 2, ["--pp", "2"])
        XCTAssertEqual(hybrid.outputs.map(\.token_ids), single.outputs.map(\.token_ids))

        // Data-parallel replicas (the two prompts go to different replicas): spawned, and two replicas of two
        // stages under the launcher.
        let replicated = try generate(tp: 1, ["--dp", "2"])
        XCTAssertEqual(replicated.outputs.map(\.token_ids), single.outputs.map(\.token_ids))
        XCTAssertEqual(replicated.outputs.map(\.text), single.outputs.map(\.text))
        let replicatedStages = try generate(["launch", "--nproc-per-node", "4", "--no-prefix", "--", BuiltProgram.tandem], tp: 1, ["--pp", "2", "--dp", "2"])
        XCTAssertEqual(replicatedStages.outputs.map(\.token_ids), single.outputs.map(\.token_ids))
    }

    /// Mixtral with its experts spread over the replicas (the replicas step together; the two prompts go to
    /// different replicas, and each MoE layer sends tokens between them): spawned with all-to-all dispatch, and
    /// tp 2 × dp 2 under the launcher with all-gather dispatch — one rank's tokens.
    func testMixtralWithExpertsAcrossReplicasGivesOneRanksTokens() throws {
        let moe = try Reference.temporaryDirectory(self).appendingPathComponent("tiny-moe").path
        let made = try BuiltProgram.run(BuiltProgram.tandem, ["make-model", "--out", moe, "--preset", "tiny-moe", "--seed", "3"])
        XCTAssertEqual(made.status, 0, made.output)
        let single = try generate(model: moe, tp: 1)
        let spawned = try generate(model: moe, tp: 1, ["--dp", "2", "--enable-expert-parallel"])
        XCTAssertEqual(spawned.outputs.map(\.token_ids), single.outputs.map(\.token_ids))
        let launched = try generate(
            ["launch", "--nproc-per-node", "4", "--no-prefix", "--", BuiltProgram.tandem], model: moe, tp: 2,
            ["--dp", "2", "--enable-expert-parallel", "--expert-placement", "round_robin", "--expert-dispatch", "all_gather"])
        XCTAssertEqual(launched.outputs.map(\.token_ids), single.outputs.map(\.token_ids))
    }

    /// Ranks started by OpenMPI's mpirun, and by a Slurm step (two tasks with the variables srun sets, started here
    /// together), join with no flag and no job token — the port and token come from the job's id — and give one
    /// rank's tokens; a second step of the job meets on its own port.
    func testMpirunAndSrunRanksJoinWithoutFlags() throws {
        let single = try generate(tp: 1)
        func decode(_ status: Int32, _ output: String) throws -> Report {
            XCTAssertEqual(status, 0, output)
            let line = try XCTUnwrap(output.split(separator: "\n").first { $0.hasPrefix("{") }, output)
            return try JSONDecoder().decode(Report.self, from: Data(line.utf8))
        }
        let arguments = ["generate", "--model", directory!, "--tp", "2"] + generateArguments
        let mpirun = try BuiltProgram.run(
            "/usr/bin/env", ["mpirun", "-np", "2", BuiltProgram.tandem] + arguments,
            environment: ["OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1", "TANDEM_JOB_TOKEN": ""])
        XCTAssertEqual(try decode(mpirun.status, mpirun.output).outputs.map(\.token_ids), single.outputs.map(\.token_ids))
        for step in ["0", "1"] {
            let results = Mutex<[(status: Int32, output: String)]>([(-1, "not run"), (-1, "not run")])
            DispatchQueue.concurrentPerform(iterations: 2) { rank in
                let environment = [
                    "SLURM_JOB_ID": "4242", "SLURM_STEP_ID": step, "SLURM_PROCID": String(rank), "SLURM_STEP_NUM_TASKS": "2",
                    "SLURM_LOCALID": String(rank), "SLURM_NODEID": "0", "SLURM_STEP_TASKS_PER_NODE": "2", "SLURM_STEP_NODELIST": "localhost",
                    "TANDEM_JOB_TOKEN": "",
                ]
                let run = try? BuiltProgram.run(BuiltProgram.tandem, arguments, environment: environment)
                let result = (run?.status ?? -1, run?.output ?? "could not start")
                results.withLock { $0[rank] = result }
            }
            let runs = results.withLock { $0 }
            let report = try decode(runs[0].status, runs[0].output)
            XCTAssertEqual(runs[1].status, 0, runs[1].output)
            XCTAssertEqual(report.outputs.map(\.token_ids), single.outputs.map(\.token_ids), "Slurm step \(step)")
        }
    }

    #if MPI
    /// `mpirun -np 4 tandem generate --tp 2 --pp 2` on the MPI backend (every group — world, tp, the pipeline
    /// links, the step queue — an MPI communicator) gives one rank's tokens.
    func testMpirunOnTheMPIBackendGivesTheTokensOfOneRank() throws {
        let single = try generate(tp: 1)
        let run = try BuiltProgram.run(
            "/usr/bin/env",
            ["mpirun", "--oversubscribe", "-np", "4", BuiltProgram.tandem, "generate", "--model", directory!, "--tp", "2", "--pp", "2"]
                + generateArguments,
            environment: [
                "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1", "TANDEM_JOB_TOKEN": "",
                TandemEnvironment.backend.name: "mpi", "TANDEM_LOG_LEVEL": "info",
            ])
        XCTAssertEqual(run.status, 0, run.output)
        XCTAssertEqual(run.lines(containing: "group 'world' rank").filter { $0.contains("backend mpi") }.count, 4, run.output)
        let line = try XCTUnwrap(run.output.split(separator: "\n").first { $0.hasPrefix("{") }, run.output)
        let report = try JSONDecoder().decode(Report.self, from: Data(line.utf8))
        XCTAssertEqual(report.outputs.map(\.token_ids), single.outputs.map(\.token_ids))
    }
    #endif

    /// Through processes, an engine squeezed to a 12-block pool of 4 positions, 8-token steps and 2 running
    /// requests (so prompts are chunked and requests preempted and recomputed) gives the tokens of the default
    /// engine on one rank.
    func testSpawnedRanksWithATightEngineGiveTheTokensOfOneRank() throws {
        let prompts = ["Hello world", "Tensor parallelism splits each layer", "Hello world, again and again", "x"].flatMap { ["--prompt", $0] }
        func run(_ options: [String], tp: Int) throws -> [[Int]] {
            let run = try BuiltProgram.run(
                BuiltProgram.tandem,
                ["generate", "--model", directory, "--tp", String(tp), "--max-tokens", "20", "--temperature", "0", "--ignore-eos", "--json", "--threads", "1"]
                    + prompts + options)
            XCTAssertEqual(run.status, 0, run.output)
            let line = try XCTUnwrap(run.output.split(separator: "\n").first { $0.hasPrefix("{") }, run.output)
            return try JSONDecoder().decode(Report.self, from: Data(line.utf8)).outputs.map(\.token_ids)
        }
        let reference = try run([], tp: 1)
        XCTAssertEqual(reference.map(\.count), [20, 20, 20, 20])
        let tight = ["--num-kv-blocks", "12", "--block-size", "4", "--max-num-batched-tokens", "8", "--max-num-seqs", "2"]
        XCTAssertEqual(try run(tight, tp: 2), reference)
        XCTAssertEqual(try run(tight + ["--no-prefix-caching", "--kv-cache-dtype", "float32"], tp: 2), reference)
    }

    func testEngineOptionsThatCannotWorkAreRefused() throws {
        for (options, message) in [
            (["--kv-cache-dtype", "int8"], "--kv-cache-dtype must be auto, bfloat16, float16 or float32, got int8"),
            (["--num-kv-blocks", "4", "--kv-cache-memory", "1G"], "give --kv-cache-memory or --num-kv-blocks, not both"),
            (["--block-size", "0"], "block size must be in 1 … 1024, got 0"),
            (["--max-num-seqs", "0"], "--max-num-seqs must be ≥ 1, got 0"),
            (["--num-kv-blocks", "2"], "need 9 KV blocks of 16 positions; the pool has 2"),
            (["--num-kv-blocks", "9223372036854775807"], "9223372036854775807 blocks of 4096 bytes are more than this host's"),
            (["--kv-cache-memory", "100000G"], "107374182400000 bytes are more than this host's"),
        ] {
            let run = try BuiltProgram.run(BuiltProgram.tandem, ["generate", "--model", directory, "--prompt", "x", "--max-tokens", "130"] + options)
            XCTAssertNotEqual(run.status, 0)
            XCTAssertTrue(run.output.contains(message), "\(options): \(run.output)")
        }
    }

    func testTensorParallelSizeThatDoesNotSplitTheModelListsValidSizes() throws {
        let run = try BuiltProgram.run(BuiltProgram.tandem, ["generate", "--model", directory, "--tp", "3", "--prompt", "x"])
        XCTAssertNotEqual(run.status, 0)
        XCTAssertTrue(run.output.contains("tensor parallel size 3"), run.output)
        XCTAssertTrue(run.output.contains("valid sizes: 1, 2, 4"), run.output)
    }

    /// `--stop ")\n and"` as a shell passes it (backslash, n) stops at a newline, as the README's `--stop "\n\n"`
    /// means; an unknown escape is refused naming it. (Greedy "Hello world" on this checkpoint writes ")\n and".)
    private struct LogprobsReport: Decodable {
        struct Candidate: Decodable {
            let tokenID: Int
            let logprob: Double
        }
        struct Step: Decodable {
            let sampled: Candidate
            let top: [Candidate]
        }
        struct Output: Decodable {
            let token_ids: [Int]
            let logprobs: [Step]
        }
        let outputs: [Output]
    }

    /// `--logprobs N` adds each generated token's log-probability and the N likeliest to --json's outputs (the
    /// engine's values, checked against the numpy reference in LogprobsReferenceTests): one step per token, the
    /// sampled one the token, greedy's the likeliest, the same on spawned ranks; without --json it is refused.
    func testLogprobsAreReportedForEachToken() throws {
        func run(tp: Int) throws -> LogprobsReport {
            let run = try BuiltProgram.run(BuiltProgram.tandem, ["generate", "--model", directory, "--tp", String(tp), "--logprobs", "3"] + generateArguments)
            XCTAssertEqual(run.status, 0, run.output)
            let line = try XCTUnwrap(run.output.split(separator: "\n").first { $0.hasPrefix("{") }, run.output)
            return try JSONDecoder().decode(LogprobsReport.self, from: Data(line.utf8))
        }
        let (one, two) = (try run(tp: 1), try run(tp: 2))
        for (output, spawned) in zip(one.outputs, two.outputs) {
            XCTAssertEqual(output.logprobs.count, output.token_ids.count)
            XCTAssertEqual(output.logprobs.map(\.sampled.tokenID), output.token_ids)
            for step in output.logprobs {
                XCTAssertEqual(step.top.count, 3)
                XCTAssertEqual(step.top[0].tokenID, step.sampled.tokenID, "greedy samples the likeliest token")
                XCTAssertEqual(step.top.map(\.logprob), step.top.map(\.logprob).sorted(by: >))
                XCTAssertLessThan(step.top[0].logprob, 0)
            }
            XCTAssertEqual(spawned.token_ids, output.token_ids)
            for (a, b) in zip(spawned.logprobs, output.logprobs) { XCTAssertEqual(a.sampled.logprob, b.sampled.logprob, accuracy: 1e-4) }
        }
        let refused = try BuiltProgram.run(BuiltProgram.tandem, ["generate", "--model", directory, "--prompt", "x", "--logprobs", "3"])
        XCTAssertNotEqual(refused.status, 0)
        XCTAssertTrue(refused.output.contains("--logprobs adds the log-probabilities to --json's outputs: give --json too"), refused.output)
    }

    func testStopStringsReadBackslashEscapes() throws {
        let base: [String] = ["generate", "--model", directory, "--prompt", "Hello world", "--max-tokens", "64", "--temperature", "0", "--ignore-eos", "--json",
                    "--threads", "1"]
        func output(_ extra: [String]) throws -> Report.Output {
            let run = try BuiltProgram.run(BuiltProgram.tandem, base + extra)
            XCTAssertEqual(run.status, 0, run.output)
            let line = try XCTUnwrap(run.output.split(separator: "\n").first { $0.hasPrefix("{") }, run.output)
            return try JSONDecoder().decode(Report.self, from: Data(line.utf8)).outputs[0]
        }
        let full = try output([]).text
        let stop = try XCTUnwrap(full.range(of: ")\n and"), "the checkpoint's greedy text changed: \(full.debugDescription)")
        let stopped = try output(["--stop", #")\n and"#])
        XCTAssertEqual(stopped.text, String(full[..<stop.lowerBound]))
        XCTAssertEqual(stopped.finish_reason, "stop")
        let refused = try BuiltProgram.run(BuiltProgram.tandem, base + ["--stop", #"a\q"#])
        XCTAssertNotEqual(refused.status, 0)
        XCTAssertTrue(refused.output.contains(#"unknown escape \q"#), refused.output)
    }

    /// A prompt that is not UTF-8 is refused, not read as U+FFFD.
    func testAnArgumentThatIsNotUTF8IsRefused() throws {
        let run = try BuiltProgram.run(
            "/bin/sh", ["-c", "exec \"$0\" generate --model \"$1\" --prompt \"$(printf 'ab\\377')\"", BuiltProgram.tandem, directory])
        XCTAssertEqual(run.status, 2, run.output)
        XCTAssertTrue(run.output.contains("argument 5 (the value of --prompt) is not valid UTF-8"), run.output)
    }

    /// make-model refuses an --out that is a file, under a file, or a directory already holding files (unless
    /// --force), in words rather than Foundation's error codes.
    func testMakeModelExplainsWhereItCannotWrite() throws {
        let base = try Reference.temporaryDirectory(self)
        let file = base.appendingPathComponent("plain").path
        try Data("x".utf8).write(to: URL(fileURLWithPath: file))
        for (out, expected) in [
            (file, "--out \(file) is a file, not a directory"), (file + "/model", "\(file) is a file, not a directory"),
            (directory!, "already holds"),
        ] {
            let run = try BuiltProgram.run(BuiltProgram.tandem, ["make-model", "--out", out])
            XCTAssertNotEqual(run.status, 0)
            XCTAssertTrue(run.output.contains(expected), run.output)
            XCTAssertFalse(run.output.contains("NSCocoaErrorDomain") || run.output.contains("Usage:"), run.output)
        }
        XCTAssertEqual(try BuiltProgram.run(BuiltProgram.tandem, ["make-model", "--out", directory, "--force", "--seed", "3"]).status, 0)
    }

    /// `--version`; with `--stream` standard output is the text alone (the timing line goes to standard error);
    /// `bench generate --json` uses snake_case keys like every other JSON Tandem prints.
    func testVersionStreamOutputAndBenchKeys() throws {
        let version = try BuiltProgram.run(BuiltProgram.tandem, ["--version"])
        XCTAssertEqual(version.status, 0)
        XCTAssertTrue(version.output.hasPrefix("0."), version.output)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: BuiltProgram.tandem)
        process.arguments = ["generate", "--model", directory, "--prompt", "Hello world", "--max-tokens", "5", "--temperature", "0", "--stream"]
        let (out, err) = (Pipe(), Pipe())
        process.standardOutput = out
        process.standardError = err
        try process.run()
        process.waitUntilExit()
        let stdout = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        XCTAssertEqual(process.terminationStatus, 0, stderr)
        XCTAssertFalse(stdout.contains("tokens/s"), stdout)
        XCTAssertTrue(stderr.contains("decode"), stderr)
        let bench = try BuiltProgram.run(
            BuiltProgram.tandem, ["bench", "generate", "--model", directory, "--prompt-len", "4", "--gen-len", "2", "--repeats", "1", "--json"])
        XCTAssertEqual(bench.status, 0, bench.output)
        let line = try XCTUnwrap(bench.output.split(separator: "\n").first { $0.hasPrefix("{") })
        let keys = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]).keys
        XCTAssertTrue(keys.contains("decode_tokens_per_s") && keys.contains("tp"), "\(keys.sorted())")
        XCTAssertFalse(keys.contains { $0.contains(where: \.isUppercase) }, "\(keys.sorted())")
    }

    /// `tandem bench accuracy` compares q8_0 and q4_0 with the checkpoint's weights over windows of text: every
    /// position counted, divergences ordered and non-negative, q4_0 further than q8_0 (4 bits round each weight
    /// 16 times more coarsely), and the quantized weights smaller.
    func testBenchAccuracyComparesQuantizedWithStoredWeights() throws {
        var reports: [String: [String: Any]] = [:]
        for format in ["q8_0", "q4_0"] {
            let run = try BuiltProgram.run(
                BuiltProgram.tandem, ["bench", "accuracy", "--model", directory, "--quantization", format, "--sequences", "4", "--length", "12", "--json"])
            XCTAssertEqual(run.status, 0, run.output)
            let line = try XCTUnwrap(run.output.split(separator: "\n").first { $0.hasPrefix("{") }, run.output)
            reports[format] = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        }
        for (format, report) in reports {
            XCTAssertEqual(report["positions"] as? Int, 48, format)
            let (median, mean, p99, largest) = (report["median_kl"] as! Double, report["mean_kl"] as! Double, report["p99_kl"] as! Double, report["max_kl"] as! Double)
            XCTAssertTrue(0 <= median && median <= p99 && p99 <= largest && mean <= largest && mean > 0, "\(format): \(report)")
            XCTAssertTrue((0...1).contains(report["same_top_rate"] as! Double), "\(format): \(report)")
            XCTAssertLessThan(report["weight_bytes_quantized"] as! Int, report["weight_bytes_reference"] as! Int, format)
        }
        XCTAssertLessThan(reports["q8_0"]!["mean_kl"] as! Double, reports["q4_0"]!["mean_kl"] as! Double)
        let refused = try BuiltProgram.run(BuiltProgram.tandem, ["bench", "accuracy", "--model", directory, "--quantization", "q8_0", "--sequences", "65"])
        XCTAssertNotEqual(refused.status, 0)
        XCTAssertTrue(refused.output.contains("--sequences must be in 1...64, got 65"), refused.output)
        let unreadable = try BuiltProgram.run(BuiltProgram.tandem, ["bench", "accuracy", "--model", directory, "--quantization", "q8_0", "--text", "/nonexistent/text"])
        XCTAssertNotEqual(unreadable.status, 0)
        XCTAssertEqual(unreadable.lines(containing: "--text /nonexistent/text: cannot read it as UTF-8 text").count, 1, unreadable.output)
    }

    /// Every `TANDEM_*` value is checked when the program starts, whatever the command.
    func testAnInvalidEnvironmentValueIsRefusedAtStart() throws {
        for (name, value, expected) in [
            ("TANDEM_LOG_LEVEL", "loud", "debug, info, warning or error"), ("TANDEM_BACKEND", "rdma", "auto"),
            ("TANDEM_USE_SPLIT_GROUP", "yes", "1 (split) or 0"), ("TANDEM_PP_LAYER_PARTITION", "6,x", "positive layer counts"),
            ("TANDEM_PP_LAYER_PARTITION", "6,0", "one per pipeline stage"), ("TANDEM_PEER_TIMEOUT_S", "1", "whole seconds from 2 to 3600"),
            ("TANDEM_PEER_TIMEOUT_S", "2.5", "whole seconds from 2 to 3600"), ("TANDEM_PEER_TIMEOUT_S", "soon", "a positive number of seconds"),
            ("TANDEM_ACTIVATION_SYNC", "fp8", "float32, bfloat16, int8"), ("TANDEM_SOCKETS_PER_PEER", "0", "a whole number from 1 to 16"),
            ("TANDEM_SOCKETS_PER_PEER", "17", "a whole number from 1 to 16"), ("TANDEM_SOCKETS_PER_PEER", "two", "a whole number from 1 to 16"),
        ] {
            let run = try BuiltProgram.run(BuiltProgram.tandem, ["info"], environment: [name: value])
            XCTAssertEqual(run.status, 2, run.output)
            XCTAssertEqual(run.lines(containing: "invalid \(name)=\"\(value)\"").count, 1, run.output)
            XCTAssertTrue(run.output.contains(expected), run.output)
        }
        XCTAssertEqual(try BuiltProgram.run(BuiltProgram.tandem, ["info"], environment: ["TANDEM_LOG_LEVEL": "Debug"]).status, 0)
        XCTAssertEqual(try BuiltProgram.run(BuiltProgram.tandem, ["info"], environment: ["TANDEM_PP_LAYER_PARTITION": "5, 7"]).status, 0)
    }

    func testMissingModelDirectoryIsExplained() throws {
        let run = try BuiltProgram.run(BuiltProgram.tandem, ["generate", "--model", directory + "-missing", "--prompt", "x"])
        XCTAssertNotEqual(run.status, 0)
        XCTAssertTrue(run.output.contains("-missing does not exist (a Hugging Face checkpoint directory"), run.output)
    }

    func testLaunchedWorldThatDoesNotMatchTheLayoutIsRefused() throws {
        let run = try BuiltProgram.run(
            BuiltProgram.tandem, ["launch", "--nproc-per-node", "2", "--", BuiltProgram.tandem, "generate", "--model", directory, "--prompt", "x"])
        XCTAssertNotEqual(run.status, 0)
        XCTAssertEqual(run.lines(containing: "started 2 ranks but --tp 1 × --pp 1 × --dp 1 is 1").count, 1, "printed once, by rank 0: \(run.output)")
        XCTAssertFalse(run.output.contains("Usage:"), run.output)
        // A request every rank refuses: also said once.
        let refused = try BuiltProgram.run(
            BuiltProgram.tandem,
            ["launch", "--nproc-per-node", "2", "--master-port", "0", "--", BuiltProgram.tandem, "generate", "--model", directory, "--tp", "2",
             "--prompt", "x", "--max-tokens", "100000"])
        XCTAssertNotEqual(refused.status, 0)
        XCTAssertEqual(refused.lines(containing: "max_tokens 100000").count, 1, refused.output)
    }

    /// Starts `tandem generate --tp 2` on a long generation and, once its spawned worker runs, calls `body` with
    /// the driver's and the worker's process ids; returns the run.
    /// A long greedy generation over `layout` (tp 2 by default); `body` gets the driver and its workers (in rank
    /// order) once it is generating.
    private func longGeneration(
        model: String? = nil, layout: [String] = ["--tp", "2"], flags: [String] = [], prompts: Int = 1,
        _ body: @escaping (_ driver: Process, _ workers: [pid_t]) -> Void
    ) throws -> BuiltProgram.Run {
        let model = model ?? directory!
        // A long context so that generation is still running when a rank is killed (32,000 tokens of the tiny model
        // take ~20 s at tp 2 here; 8,000 took 1.4 s once decode attention read the cache in place).
        let configURL = URL(fileURLWithPath: model).appendingPathComponent("config.json")
        var config = try JSONSerialization.jsonObject(with: Data(contentsOf: configURL)) as! [String: Any]
        config["max_position_embeddings"] = 32768
        try JSONSerialization.data(withJSONObject: config).write(to: configURL)
        let expected = layout.enumerated().filter { $0.offset % 2 == 1 }.reduce(1) { $0 * Int($1.element)! } - 1
        return try BuiltProgram.run(
            BuiltProgram.tandem,
            ["generate", "--model", model] + layout + flags + (0..<prompts).flatMap { ["--prompt", "x \($0)"] }
                + ["--max-tokens", "32000", "--ignore-eos", "--temperature", "0", "--threads", "1"], timeout: 60
        ) { driver in
            let pid = driver.processIdentifier
            var children: [pid_t] = []
            let deadline = Date(timeIntervalSinceNow: 20)
            while children.count < expected && Date() < deadline {
                usleep(50_000)
                children = childProcesses(of: pid)
            }
            guard children.count == expected else { return XCTFail("the driver spawned \(children) where \(expected) workers were due") }
            usleep(1_000_000)  // loading done, generating
            // Spawned in rank order, so their pids ascend unless the pid space wrapped.
            body(driver, children.sorted())
        }
    }

    /// Kills rank 1 (the first spawned worker) mid-generation and checks that the job ends within 2 s with an
    /// error containing each of `names`, prints no result, the other workers exit with it, and nothing is left in
    /// /dev/shm.
    private func checkKillingRankOneEndsTheJob(
        model: String? = nil, layout: [String] = ["--tp", "2"], flags: [String] = [], prompts: Int = 1, naming names: [String]
    ) throws {
        var killedAt: Date?
        var finishedAt = Date()
        var survivors: [pid_t] = []
        let run = try longGeneration(model: model, layout: layout, flags: flags, prompts: prompts) { driver, workers in
            kill(workers[0], SIGKILL)
            killedAt = Date()
            survivors = Array(workers.dropFirst())
            driver.waitUntilExit()
            finishedAt = Date()
        }
        XCTAssertNotEqual(run.status, 0)
        for name in names { XCTAssertTrue(run.output.contains(name), "\(name): \(run.output)") }
        XCTAssertLessThan(finishedAt.timeIntervalSince(try XCTUnwrap(killedAt)), 2, run.output)
        XCTAssertFalse(run.output.contains("output: "), "no result may be printed after a rank died")
        for pid in survivors { XCTAssertNotEqual(kill(pid, 0), 0, "worker pid \(pid) exited with the job") }
        let left = try FileManager.default.contentsOfDirectory(atPath: "/dev/shm").filter { $0.hasPrefix("tdm") }
        XCTAssertEqual(left, [], "nothing of the job is left in /dev/shm")
    }

    /// `kill -9` of the spawned worker mid-generation ends the job within 2 s, with an error naming the rank and
    /// signal, and leaves nothing in /dev/shm.
    func testKilledWorkerEndsTheJobPromptly() throws {
        try checkKillingRankOneEndsTheJob(naming: ["rank 1", "signal 9"])
    }

    /// `kill -9` of the second data-parallel replica (its driver, rank 1) while both replicas generate ends the
    /// job within 2 s, naming the replica, the rank and the signal; nothing is left in /dev/shm.
    func testKilledDataParallelReplicaEndsTheJobPromptly() throws {
        try checkKillingRankOneEndsTheJob(layout: ["--dp", "2"], prompts: 2, naming: ["rank 1", "signal 9", "replica 1"])
    }

    /// `kill -9` of the second replica while Mixtral's experts span both replicas (rank 0 waits on it inside every
    /// MoE layer's all-to-all) ends the job within 2 s, naming the rank and the signal; nothing is left in /dev/shm.
    func testKilledReplicaWithExpertsAcrossReplicasEndsTheJobPromptly() throws {
        let model = try Reference.temporaryDirectory(self).appendingPathComponent("tiny-moe").path
        let made = try BuiltProgram.run(BuiltProgram.tandem, ["make-model", "--out", model, "--preset", "tiny-moe", "--seed", "3"])
        XCTAssertEqual(made.status, 0, made.output)
        try checkKillingRankOneEndsTheJob(model: model, layout: ["--dp", "2"], flags: ["--enable-expert-parallel"], prompts: 2, naming: ["rank 1", "signal 9"])
    }

    /// `kill -9` of the middle stage of three, while four requests stream through the pipeline (micro-batches in
    /// flight on every stage), ends the job within 2 s naming rank 1; no stage is left waiting in a receive.
    func testKilledMiddlePipelineStageEndsTheJobPromptly() throws {
        let model = try Reference.temporaryDirectory(self).appendingPathComponent("tiny-3").path
        let made = try BuiltProgram.run(BuiltProgram.tandem, ["make-model", "--out", model, "--preset", "tiny", "--layers", "3", "--seed", "3"])
        XCTAssertEqual(made.status, 0, made.output)
        try checkKillingRankOneEndsTheJob(model: model, layout: ["--pp", "3"], prompts: 4, naming: ["rank 1", "signal 9"])
    }

    /// `kill -9` of the driver takes its worker down with it (parent-death signal), within 2 s.
    func testWorkerDiesWithItsDriver() throws {
        var workerGoneAfter: Double?
        _ = try longGeneration { driver, workers in
            let worker = workers[0]
            kill(driver.processIdentifier, SIGKILL)
            let killed = Date()
            while Date().timeIntervalSince(killed) < 10 {
                // Gone, or a zombie left for init to reap.
                let state = (try? String(contentsOfFile: "/proc/\(worker)/stat", encoding: .utf8))?.split(separator: " ").dropFirst(2).first
                if state == nil || state == "Z" { workerGoneAfter = Date().timeIntervalSince(killed); break }
                usleep(5_000)
            }
        }
        let seconds = try XCTUnwrap(workerGoneAfter, "the worker outlived its driver by 10 s")
        XCTAssertLessThan(seconds, 2)
    }

    /// A size the model cannot split is refused before any worker is started, and said once.
    func testTensorParallelSizeIsCheckedBeforeSpawning() throws {
        let run = try BuiltProgram.run(BuiltProgram.tandem, ["generate", "--model", directory, "--tp", "1000", "--prompt", "x"], timeout: 20)
        XCTAssertNotEqual(run.status, 0)
        XCTAssertEqual(run.lines(containing: "tensor parallel size 1000").count, 1, run.output)
        XCTAssertLessThan(run.seconds, 10, "no processes should have been started")
    }

    /// make-model's tokenizer.json loads in the `tokenizers` package and encodes the corpus as Tandem does.
    func testMadeTokenizerMatchesTokenizersPackage() throws {
        try TokenizerTests.checkAgainstReference(directory: directory)
    }
}
