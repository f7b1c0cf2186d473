import ArgumentParser
import Dispatch
import Foundation
import TandemComm
import TandemEngine
import TandemModel
import TandemTensor

/// `tandem bench throughput`: vLLM's benchmark_throughput — many random-token requests submitted at once.
struct BenchThroughput: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "throughput",
        abstract: "Offline throughput: --num-prompts random-token requests at once through the engine (vLLM's benchmark_throughput).",
        discussion: """
            Prompts are random token ids (seeded), generation is greedy and ignores end-of-sequence, so every request \
            produces --output-len tokens. One untimed warm-up request runs first; with --prefix-len every prompt starts \
            with the same random prefix. The driver's share is the time rank 0 spends scheduling and sending the \
            plan, over the steps that ran the largest batch. With --pp, each stage's idle share is 1 − (seconds its \
            ranks spent in forward passes ÷ the run's seconds), averaged over the stage's tp ranks: the pipeline \
            bubble, plus on stage 0 the driver's own work (scheduling, sampling). With experts spread over the \
            replicas (--dp > 1 --enable-expert-parallel) it prints the bytes the MoE layers' dispatch moved per token \
            and layer, summed over the ranks and counted from the messages' sizes, beside the analytic count for \
            all-to-all: top-k × hidden × 4 bytes × 2 directions × the share of (token, expert) pairs routed off-rank.
            """)

    @OptionGroup var modelOptions: ModelOptions

    @Option(name: .customLong("num-prompts"), help: "Requests.")
    var numPrompts: Int = 64

    @Option(name: .customLong("input-len"), help: "Prompt tokens per request.")
    var inputLength: Int = 128

    @Option(name: .customLong("output-len"), help: "Generated tokens per request.")
    var outputLength: Int = 128

    @Option(name: .customLong("prefix-len"), help: "Leading prompt tokens shared by every request (part of --input-len).")
    var prefixLength: Int = 0

    @Flag(help: "Submit each request after the previous one finished (time to first token of each; with --prefix-len, the prefix cache's effect).")
    var sequential = false

    @Option(help: "Seed of the random prompts.")
    var seed: UInt64 = 0

    @Flag(help: "Print one JSON object.")
    var json = false

    func validate() throws {
        guard numPrompts >= 1, inputLength >= 1, outputLength >= 1 else {
            throw ValidationError("--num-prompts, --input-len and --output-len must be ≥ 1")
        }
        guard prefixLength >= 0, prefixLength <= inputLength else { throw ValidationError("--prefix-len must be in 0 … --input-len (\(inputLength))") }
    }

    struct Report: Codable {
        var tensorParallelSize = 0
        var pipelineParallelSize = 1
        var dataParallelSize = 1
        /// Tokens each data-parallel replica generated in the run (how the front end balanced them).
        var replicaGeneratedTokens: [Int] = []
        var threadsPerRank = 0
        var numPrompts = 0
        var inputLength = 0
        var outputLength = 0
        var prefixLength = 0
        var elapsedSeconds = 0.0
        var requestsPerSecond = 0.0
        var outputTokensPerSecond = 0.0
        var totalTokensPerSecond = 0.0
        var steps = 0
        var largestBatch = 0
        var driverShare = 0.0
        var preemptions = 0
        var kvCacheBytesPerRank = 0
        var kvBlocks = 0
        var residentBytesPerRank = 0
        /// Time to first token of the first request and the median and largest of the others (sequential runs).
        var firstTimeToFirstTokenSeconds = 0.0
        var restTimeToFirstTokenMedianSeconds = 0.0
        var restTimeToFirstTokenMaxSeconds = 0.0
        var prefixCacheHitTokens = 0
        /// A hash of every output's token ids, to compare runs (cache on and off).
        var outputDigest = ""
        /// Each pipeline stage's share of the run not spent in forward passes.
        var stageIdleFractions: [Double] = []
        /// The driver's share of the run spent waiting for the last stage's logits.
        var driverLogitsWaitShare = 0.0
        /// With experts spread over the replicas: the dispatch, the share of routed (token, expert) pairs whose expert
        /// is on another rank, and per token and MoE layer the hidden-state bytes moved (all ranks' sends), the
        /// all-to-all analytic count, and the other bytes (expert ids, counts).
        var expertDispatch: String?
        var expertOffRankShare: Double?
        var expertHiddenBytesPerToken: Double?
        var expertAnalyticBytesPerToken: Double?
        var expertMetadataBytesPerToken: Double?

        enum CodingKeys: String, CodingKey {
            case tensorParallelSize = "tp", pipelineParallelSize = "pp", dataParallelSize = "dp", replicaGeneratedTokens = "replica_generated_tokens", stageIdleFractions = "stage_idle_fractions", driverLogitsWaitShare = "driver_logits_wait_share", threadsPerRank = "threads_per_rank", numPrompts = "num_prompts", inputLength = "input_len"
            case outputLength = "output_len", prefixLength = "prefix_len", elapsedSeconds = "elapsed_s", requestsPerSecond = "requests_per_s"
            case outputTokensPerSecond = "output_tokens_per_s", totalTokensPerSecond = "total_tokens_per_s", steps, largestBatch = "largest_batch"
            case driverShare = "driver_share", preemptions, kvCacheBytesPerRank = "kv_cache_bytes_per_rank", kvBlocks = "kv_blocks"
            case residentBytesPerRank = "resident_bytes_per_rank", firstTimeToFirstTokenSeconds = "ttft_first_s"
            case restTimeToFirstTokenMedianSeconds = "ttft_rest_median_s", restTimeToFirstTokenMaxSeconds = "ttft_rest_max_s"
            case prefixCacheHitTokens = "prefix_cache_hit_tokens", outputDigest = "output_digest"
            case expertDispatch = "expert_dispatch", expertOffRankShare = "expert_off_rank_share", expertHiddenBytesPerToken = "expert_hidden_bytes_per_token"
            case expertAnalyticBytesPerToken = "expert_analytic_bytes_per_token", expertMetadataBytesPerToken = "expert_metadata_bytes_per_token"
        }
    }

    func run() throws {
        try modelOptions.run { llm, reports in
            var random = RandomPrompts(seed: seed, vocabularySize: llm.model.config.vocabularySize)
            let prompts = random.prompts(numPrompts, length: inputLength, prefixLength: prefixLength)
            let params = SamplingParams(temperature: 0, maxTokens: outputLength, ignoreEOS: true)
            _ = try llm.generate(promptTokenIDs: [random.tokens(min(inputLength, 16))], SamplingParams(temperature: 0, maxTokens: 2, ignoreEOS: true))
            let hitsBefore = llm.prefixCacheHitTokens
            let countersBefore = try llm.countersPerRank()
            let waitBefore = llm.logitsWaitSeconds
            let replicasBefore = llm.replicaStats.map(\.generatedTokens)
            let start = DispatchTime.now().uptimeNanoseconds
            var outputs: [RequestOutput] = []
            var firstTokenSeconds: [Double] = []
            var steps: [StepStats] = []
            for batch in sequential ? prompts.map({ [$0] }) : [prompts] {
                outputs += try llm.generate(promptTokenIDs: batch, params)
                firstTokenSeconds.append(llm.lastTimings.prefillSeconds)
                steps += llm.lastSteps
            }
            let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            let resident = try llm.residentBytesPerRank().max() ?? 0
            let counters = try llm.countersPerRank()
            let computed = zip(counters, countersBefore).map { $0.computeSeconds - $1.computeSeconds }
            let traffic = zip(counters, countersBefore).reduce(ExpertTraffic()) { $0 + $1.0.expertTraffic - $1.1.expertTraffic }
            guard reports else { return }
            let generated = outputs.reduce(0) { $0 + $1.tokenIDs.count }
            let largest = steps.map(\.scheduledRequests).max() ?? 0
            let full = steps.filter { $0.scheduledRequests == largest }
            var report = Report(
                tensorParallelSize: llm.groups.layout.tensorParallelSize, pipelineParallelSize: llm.groups.layout.pipelineParallelSize, threadsPerRank: modelOptions.threadsPerRank, numPrompts: numPrompts, inputLength: inputLength,
                outputLength: outputLength, prefixLength: prefixLength, elapsedSeconds: elapsed)
            report.requestsPerSecond = Double(numPrompts) / elapsed
            report.outputTokensPerSecond = Double(generated) / elapsed
            report.totalTokensPerSecond = Double(generated + numPrompts * inputLength) / elapsed
            report.steps = steps.count
            report.largestBatch = largest
            report.driverShare = full.reduce(0) { $0 + $1.scheduleSeconds } / max(full.reduce(0) { $0 + $1.stepSeconds }, 1e-12)
            report.preemptions = steps.reduce(0) { $0 + $1.preemptions }
            report.kvCacheBytesPerRank = llm.runner.cache.byteCount
            report.kvBlocks = llm.runner.cache.blockCount
            report.residentBytesPerRank = resident
            report.prefixCacheHitTokens = llm.prefixCacheHitTokens - hitsBefore
            report.outputDigest = String(stableHash("\(outputs.map(\.tokenIDs))"), radix: 16)
            report.driverLogitsWaitShare = (llm.logitsWaitSeconds - waitBefore) / elapsed
            let (tp, pp, dp) = (report.tensorParallelSize, report.pipelineParallelSize, modelOptions.dp)
            report.dataParallelSize = dp
            report.replicaGeneratedTokens = zip(llm.replicaStats.map(\.generatedTokens), replicasBefore).map { $0 - $1 }
            // Rank d·pp·tp + s·tp + t is replica d's stage s, tp rank t: a stage's share averages its ranks of every replica.
            report.stageIdleFractions = (0..<pp).map { stage in
                let ranks = (0..<dp).flatMap { replica in (0..<tp).map { replica * pp * tp + stage * tp + $0 } }
                return 1 - ranks.reduce(0) { $0 + computed[$1] } / Double(ranks.count) / elapsed
            }
            if traffic.routedTokens > 0 {
                let config = llm.model.config
                let tokens = Double(traffic.routedTokens)
                report.expertDispatch = modelOptions.expertDispatch.rawValue
                report.expertOffRankShare = Double(traffic.offRankPairs) / Double(max(traffic.routedPairs, 1))
                report.expertHiddenBytesPerToken = Double(traffic.hiddenBytes) / tokens
                report.expertAnalyticBytesPerToken = Double(config.expertsPerToken * config.hiddenSize * 4 * 2) * report.expertOffRankShare!
                report.expertMetadataBytesPerToken = Double(traffic.metadataBytes) / tokens
            }
            if sequential {
                let rest = firstTokenSeconds.dropFirst().sorted()
                report.firstTimeToFirstTokenSeconds = firstTokenSeconds[0]
                report.restTimeToFirstTokenMedianSeconds = rest.isEmpty ? 0 : rest[rest.count / 2]
                report.restTimeToFirstTokenMaxSeconds = rest.last ?? 0
            }
            if json {
                print(try jsonLine(report))
            } else {
                print(
                    """
                    model \(modelOptions.model): tp \(report.tensorParallelSize), pp \(report.pipelineParallelSize), dp \(dp), \(report.threadsPerRank) thread(s)/rank, \(numPrompts) prompts × (\(inputLength) in\(prefixLength > 0 ? ", \(prefixLength) shared" : ""), \(outputLength) out)
                      throughput \(String(format: "%.2f", report.requestsPerSecond)) requests/s, \(String(format: "%.1f", report.outputTokensPerSecond)) output tokens/s, \(String(format: "%.1f", report.totalTokensPerSecond)) total tokens/s (\(String(format: "%.1f", elapsed)) s)
                      steps \(report.steps), largest batch \(largest), driver (schedule + plan) \(String(format: "%.2f", report.driverShare * 100))% of a full step, \(report.preemptions) preemptions
                      KV cache \(report.kvBlocks) blocks, \(report.kvCacheBytesPerRank / 1_000_000) MB/rank; resident \(report.residentBytesPerRank / 1_000_000) MB/rank at the end
                      prefix cache \(report.prefixCacheHitTokens) hit tokens; outputs digest \(report.outputDigest)\(dp > 1 ? "; tokens generated by replica: \(report.replicaGeneratedTokens.map(String.init).joined(separator: ", "))" : "")
                      idle share by stage (not in forward passes): \(report.stageIdleFractions.map { String(format: "%.1f%%", $0 * 100) }.joined(separator: ", "))\(report.pipelineParallelSize > 1 ? String(format: "; the driver waited for logits %.1f%%", report.driverLogitsWaitShare * 100) : "")
                    """)
                if let dispatch = report.expertDispatch {
                    print("  experts across replicas (\(dispatch)): " + String(
                        format: "%.1f%% of routed pairs off-rank; per token and MoE layer %.0f hidden-state bytes moved (all-to-all analytic: %.0f), %.1f other bytes",
                        report.expertOffRankShare! * 100, report.expertHiddenBytesPerToken!, report.expertAnalyticBytesPerToken!,
                        report.expertMetadataBytesPerToken!))
                }
                if sequential {
                    print(String(
                        format: "  time to first token: request 1 %.3f s; requests 2–%d median %.3f s, max %.3f s (%.1f%% of request 1)", report.firstTimeToFirstTokenSeconds,
                        numPrompts, report.restTimeToFirstTokenMedianSeconds, report.restTimeToFirstTokenMaxSeconds,
                        report.restTimeToFirstTokenMaxSeconds / report.firstTimeToFirstTokenSeconds * 100))
                }
            }
            fflush(nil)
        }
    }
}
