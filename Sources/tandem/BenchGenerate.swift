import ArgumentParser
import Foundation
import TandemComm
import TandemEngine
import TandemModel
import TandemParallel
import TandemTensor

/// `tandem bench generate`: prefill and decode speed of a checkpoint, against the machine's own limits.
struct BenchGenerate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Measure prefill and decode tokens/s, the time in communication, and decode against the memory-bandwidth roofline.",
        discussion: """
            Prompts are random token ids (seeded), generation ignores end-of-sequence. Decode's roofline is the \
            streaming read bandwidth measured here with as many concurrent readers as the run has threads in all \
            ranks of a stage (tp × threads), divided by the weight bytes every rank reads per step (with --pp the \
            stages of one step read one after another, so a stage's ranks are the readers at any moment); the one- and two-stream \
            figures give the machine's own two-reader bandwidth scaling. Prefill GFLOP/s counts the linear layers' \
            2·m·n·k over all ranks, beside fp32 sgemm at the MLP's shape on one rank with its threads. Times are \
            medians over --repeats runs after one warm-up.
            """)

    @OptionGroup var modelOptions: ModelOptions

    @Option(help: "Sequences per batch.")
    var batch: Int = 1

    @Option(name: .customLong("prompt-len"), help: "Tokens per prompt.")
    var promptLength: Int = 128

    @Option(name: .customLong("gen-len"), help: "Tokens generated per sequence.")
    var generateLength: Int = 64

    @Option(help: "Timed runs.")
    var repeats: Int = 3

    @Flag(help: "Print one JSON object.")
    var json = false

    func validate() throws {
        guard batch >= 1, promptLength >= 1, generateLength >= 2, repeats >= 1 else {
            throw ValidationError("--batch, --prompt-len and --repeats must be ≥ 1 and --gen-len ≥ 2")
        }
    }

    struct Report: Codable {
        var tensorParallelSize = 0
        var pipelineParallelSize = 1
        var threadsPerRank = 0
        var batch = 0
        var promptLength = 0
        var generateLength = 0
        var weightBytesPerStep = 0
        /// The most weight bytes any rank holds.
        var weightBytesPerRank = 0
        /// The largest resident set of any rank after loading (VmRSS; 0 where /proc is missing).
        var residentBytesPerRank = 0
        var loadSeconds = 0.0
        var prefillTokensPerSecond = 0.0
        var prefillGFLOPs = 0.0
        var sgemmGFLOPs = 0.0
        var decodeTokensPerSecond = 0.0
        var decodeMillisecondsPerStep = 0.0
        var communicationShare = 0.0
        /// Bytes rank 0 sent per decode step in its tensor-parallel all-reduces (`TANDEM_ACTIVATION_SYNC` sets their encoding).
        var allReduceBytesPerStep = 0
        var activationSync = ""
        var bandwidthOneStreamGBs = 0.0
        var bandwidthTwoStreamsGBs = 0.0
        var bandwidthRunStreamsGBs = 0.0
        var rooflineTokensPerSecond = 0.0
        var rooflineFraction = 0.0

        enum CodingKeys: String, CodingKey {
            case batch
            case tensorParallelSize = "tp", pipelineParallelSize = "pp", weightBytesPerRank = "weight_bytes_per_rank"
            case threadsPerRank = "threads_per_rank"
            case promptLength = "prompt_len"
            case generateLength = "gen_len"
            case weightBytesPerStep = "weight_bytes_per_step"
            case residentBytesPerRank = "resident_bytes_per_rank"
            case loadSeconds = "load_s"
            case prefillTokensPerSecond = "prefill_tokens_per_s"
            case prefillGFLOPs = "prefill_gflops"
            case sgemmGFLOPs = "sgemm_gflops"
            case decodeTokensPerSecond = "decode_tokens_per_s"
            case decodeMillisecondsPerStep = "decode_ms_per_step"
            case communicationShare = "communication_share"
            case allReduceBytesPerStep = "allreduce_bytes_per_step"
            case activationSync = "activation_sync"
            case bandwidthOneStreamGBs = "bandwidth_one_stream_gbs"
            case bandwidthTwoStreamsGBs = "bandwidth_two_streams_gbs"
            case bandwidthRunStreamsGBs = "bandwidth_run_streams_gbs"
            case rooflineTokensPerSecond = "roofline_tokens_per_s"
            case rooflineFraction = "roofline_fraction"
        }
    }

    func run() throws {
        try modelOptions.run { llm, reports in
            let group = llm.model.group
            let threads = modelOptions.threadsPerRank
            var report = Report(
                tensorParallelSize: group.size, pipelineParallelSize: llm.groups.layout.pipelineParallelSize, threadsPerRank: threads, batch: batch,
                promptLength: promptLength,
                generateLength: generateLength, loadSeconds: llm.loadSeconds)
            // Weight bytes read per decode step, summed over ranks.
            report.weightBytesPerStep = llm.weightBytesPerRank.reduce(0, +)
            report.weightBytesPerRank = llm.weightBytesPerRank.max() ?? 0
            report.residentBytesPerRank = try llm.residentBytesPerRank().max() ?? 0

            // The machine's limits, measured on rank 0 while the other ranks wait.
            if reports {
                // Each stream count once (the best of several passes), shared by the figures that use it.
                var measured: [Int: Double] = [:]
                for streams in Set([1, 2, group.size * threads]) { measured[streams] = MemoryBandwidth.measure(streams: streams) / 1e9 }
                report.bandwidthOneStreamGBs = measured[1]!
                report.bandwidthTwoStreamsGBs = measured[2]!
                report.bandwidthRunStreamsGBs = measured[group.size * threads]!
                report.sgemmGFLOPs = sgemmGFLOPs(config: llm.model.config)
            }

            var generator = SeededGenerator(seed: 42)
            let ordinary = llm.model.config.vocabularySize - 2
            // Fresh prompts for every run, so no run finds another's in the prefix cache.
            func prompts() -> [[Int]] { (0..<batch).map { _ in (0..<promptLength).map { _ in Int.random(in: 0..<ordinary, using: &generator) } } }
            let params = SamplingParams(temperature: 0, maxTokens: generateLength, ignoreEOS: true)
            _ = try llm.generate(promptTokenIDs: prompts(), SamplingParams(temperature: 0, maxTokens: 2, ignoreEOS: true))
            var runs: [GenerationTimings] = []
            for _ in 0..<repeats {
                _ = try llm.generate(promptTokenIDs: prompts(), params)
                runs.append(llm.lastTimings)
            }
            func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
            report.prefillTokensPerSecond = median(runs.map(\.prefillTokensPerSecond))
            report.decodeTokensPerSecond = median(runs.map(\.decodeTokensPerSecond))
            report.decodeMillisecondsPerStep = median(runs.map { $0.decodeSeconds / Double($0.decodeSteps) * 1000 })
            report.communicationShare = median(runs.map { $0.decodeCommunicationSeconds / $0.decodeSeconds })
            report.allReduceBytesPerStep = runs[0].decodeAllReduceBytes / max(runs[0].decodeSteps, 1)
            report.activationSync = group.activationSync.rawValue
            report.prefillGFLOPs = report.prefillTokensPerSecond * Double(2 * linearParameters(llm.model.config)) / 1e9
            guard reports else { return }
            report.rooflineTokensPerSecond = report.bandwidthRunStreamsGBs * 1e9 / Double(report.weightBytesPerStep) * Double(batch)
            report.rooflineFraction = report.decodeTokensPerSecond / report.rooflineTokensPerSecond
            print(json ? try jsonLine(report) : table(report))
            fflush(nil)
        }
    }

    /// Weights multiplied per token by the decoder layers (the head runs on the last token only).
    private func linearParameters(_ config: ModelConfig) -> Int {
        let attention = config.hiddenSize * (config.headCount + 2 * config.keyValueHeadCount) * config.headDimension
            + config.headCount * config.headDimension * config.hiddenSize
        return config.layerCount * (attention + 3 * config.hiddenSize * config.intermediateSize)
    }

    /// fp32 sgemm GFLOP/s at the gate/up shape of one prefill pass, with this rank's BLAS threads.
    private func sgemmGFLOPs(config: ModelConfig) -> Double {
        let (m, k, n) = (batch * promptLength, config.hiddenSize, config.intermediateSize)
        let input = Tensor(zeros: [m, k], dtype: .float32)
        let weight = Tensor(zeros: [n, k], dtype: .float32)
        let output = Tensor(zeros: [m, n], dtype: .float32)
        Matmul.linear(input, weight: weight, into: output)
        var best = Double.infinity
        for _ in 0..<5 {
            let start = DispatchTime.now().uptimeNanoseconds
            Matmul.linear(input, weight: weight, into: output)
            best = min(best, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
        return 2 * Double(m * n * k) / best / 1e9
    }

    private func table(_ r: Report) -> String {
        """
        model \(modelOptions.model): tp \(r.tensorParallelSize), pp \(r.pipelineParallelSize), \(r.threadsPerRank) thread(s)/rank, batch \(r.batch), prompt \(r.promptLength), generate \(r.generateLength)
          prefill  \(String(format: "%8.1f", r.prefillTokensPerSecond)) tokens/s  \(String(format: "%6.1f", r.prefillGFLOPs)) GFLOP/s (sgemm on one rank: \(String(format: "%.1f", r.sgemmGFLOPs)) GFLOP/s)
          decode   \(String(format: "%8.1f", r.decodeTokensPerSecond)) tokens/s  \(String(format: "%6.2f", r.decodeMillisecondsPerStep)) ms/step, \(String(format: "%.1f", r.communicationShare * 100))% in communication, \(r.allReduceBytesPerStep) bytes/step all-reduced by rank 0 (\(r.activationSync))
          memory   \(r.residentBytesPerRank / 1_000_000) MB resident per rank after loading (weights \(r.weightBytesPerRank / 1_000_000) MB on the largest rank)
          roofline \(String(format: "%8.1f", r.rooflineTokensPerSecond)) tokens/s  (\(r.weightBytesPerStep / 1_000_000) MB/step at \(String(format: "%.1f", r.bandwidthRunStreamsGBs)) GB/s) → \(String(format: "%.0f", r.rooflineFraction * 100))% of roofline
          bandwidth one stream \(String(format: "%.1f", r.bandwidthOneStreamGBs)) GB/s, two streams \(String(format: "%.1f", r.bandwidthTwoStreamsGBs)) GB/s (scaling \(String(format: "%.2f", r.bandwidthTwoStreamsGBs / r.bandwidthOneStreamGBs))×)
        """
    }
}
