import ArgumentParser
import Foundation
import TandemModel
import TandemTensor
import TandemTokenizer

/// `tandem bench accuracy`: how far quantized weights move the next-token distribution from the checkpoint's own
/// weights, as llama.cpp's perplexity tool measures it (`--kl-divergence`).
struct BenchAccuracy: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "accuracy",
        abstract: "Mean KL divergence and same-top-token rate of a quantized model's next-token distribution against the unquantized one.",
        discussion: """
            Runs --sequences windows of --length tokens of the text (--text FILE, or the prose and code make-model's \
            tokenizers are trained on, repeated) through the checkpoint twice on one rank — as stored in float32 \
            compute, and with --quantization — feeding the text token by token (all windows as one batch, so the \
            quantized model multiplies as it decodes), and compares each position's next-token distribution: \
            KL(unquantized ‖ quantized) in nats (mean, median, 99th percentile, largest), how often the most likely \
            token is the same, and each model's perplexity of the text's next tokens. With --reference, --model is \
            measured as stored (a quantized GGUF file) against --reference (the same model unquantized).
            """)

    @Option(help: "A Hugging Face checkpoint directory or a GGUF file.")
    var model: String

    @Option(help: "The quantization to measure: q8_0, q4_0, q4_k or q6_k (the checkpoint quantized as it loads).")
    var quantization: WeightQuantization?

    @Option(help: "The unquantized model to measure --model against (a checkpoint directory or GGUF file), instead of --quantization.")
    var reference: String?

    @Option(help: "Text to read (default: make-model's training prose and code).")
    var text: String?

    @Option(help: "Windows of text, run as one batch (at most 64, the quantized kernel's batch).")
    var sequences: Int = 64

    @Option(help: "Tokens per window (positions compared per window).")
    var length: Int = 64

    @Option(help: "Threads for the kernels and BLAS.")
    var threads: Int = 1

    @Flag(help: "Print one JSON object.")
    var json = false

    func validate() throws {
        guard (1...64).contains(sequences) else { throw ValidationError("--sequences must be in 1...64, got \(sequences)") }
        guard length >= 2 else { throw ValidationError("--length must be ≥ 2, got \(length)") }
        guard threads >= 1 else { throw ValidationError("--threads must be ≥ 1, got \(threads)") }
        guard (quantization == nil) != (reference == nil) else {
            throw ValidationError("give --quantization (the checkpoint quantized as it loads) or --reference (an unquantized model to measure --model against), not both")
        }
    }

    struct Report: Codable {
        var quantization = ""
        var positions = 0
        var meanKL = 0.0
        var medianKL = 0.0
        var p99KL = 0.0
        var maxKL = 0.0
        var sameTopRate = 0.0
        var perplexityReference = 0.0
        var perplexityQuantized = 0.0
        var weightBytesReference = 0
        var weightBytesQuantized = 0
        /// The token ids of each window, so that another engine can run the same positions.
        var windows: [[Int]] = []

        enum CodingKeys: String, CodingKey {
            case quantization, positions, meanKL = "mean_kl", medianKL = "median_kl", p99KL = "p99_kl", maxKL = "max_kl", sameTopRate = "same_top_rate"
            case perplexityReference = "perplexity_reference", perplexityQuantized = "perplexity_quantized"
            case weightBytesReference = "weight_bytes_reference", weightBytesQuantized = "weight_bytes_quantized", windows
        }
    }

    func run() throws {
        Matmul.setBLASThreads(threads)
        let tokenizer = try ModelFiles.tokenizer(model)
        let source: String
        do {
            source = try text.map { try String(contentsOfFile: $0, encoding: .utf8) } ?? ModelWriter.sampleText
        } catch {
            throw CommandFailure("--text \(text!): cannot read it as UTF-8 text (\(error.localizedDescription))")
        }
        let ids = try tokenizer.encode(source, addSpecialTokens: false)
        guard ids.count >= 2 else { throw CommandFailure("the text encodes to \(ids.count) token(s); it needs at least 2") }
        // Consecutive windows of length + 1 tokens (the last one is only predicted), the text repeated as needed.
        let windows = (0..<sequences).map { window in (0...length).map { ids[(window * length + $0) % ids.count] } }
        let reference = try ModelRegistry.load(model: self.reference ?? model, group: .single, threads: threads)
        let quantized = try ModelRegistry.load(model: model, group: .single, quantization: quantization, threads: threads)
        guard reference.config.vocabularySize == quantized.config.vocabularySize else {
            throw CommandFailure("--reference \(self.reference!) has \(reference.config.vocabularySize) tokens, --model \(model) \(quantized.config.vocabularySize)")
        }
        let (referenceCache, quantizedCache) = (try cache(for: reference), try cache(for: quantized))
        let vocabulary = reference.config.vocabularySize
        var divergences: [Double] = []
        var sameTop = 0
        var negativeLogLikelihood = (reference: 0.0, quantized: 0.0)
        for position in 0..<length {
            let batch = ForwardBatch(
                tokens: windows.map { $0[position] },
                sequences: (0..<sequences).map { window in
                    ScheduledSequence(tokenCount: 1, computedTokens: position, blockTable: blockTable(window), wantsLogits: true)
                })
            let p = try reference.forward(batch, cache: referenceCache)!
            let q = try quantized.forward(batch, cache: quantizedCache)!
            for window in 0..<sequences {
                let (logP, logQ) = (Self.logSoftmax(p.row(window)), Self.logSoftmax(q.row(window)))
                var divergence = 0.0
                for token in 0..<vocabulary { divergence += exp(logP[token]) * (logP[token] - logQ[token]) }
                divergences.append(max(divergence, 0))
                if logP.indices.max(by: { logP[$0] < logP[$1] }) == logQ.indices.max(by: { logQ[$0] < logQ[$1] }) { sameTop += 1 }
                let next = windows[window][position + 1]
                negativeLogLikelihood.reference -= logP[next]
                negativeLogLikelihood.quantized -= logQ[next]
            }
        }
        let sorted = divergences.sorted()
        let count = Double(divergences.count)
        var report = Report()
        report.quantization = quantization?.rawValue ?? "stored"
        report.windows = windows
        report.positions = divergences.count
        report.meanKL = divergences.reduce(0, +) / count
        report.medianKL = sorted[sorted.count / 2]
        report.p99KL = sorted[min(sorted.count - 1, Int(0.99 * count))]
        report.maxKL = sorted.last!
        report.sameTopRate = Double(sameTop) / count
        report.perplexityReference = exp(negativeLogLikelihood.reference / count)
        report.perplexityQuantized = exp(negativeLogLikelihood.quantized / count)
        report.weightBytesReference = reference.weightBytes
        report.weightBytesQuantized = quantized.weightBytes
        if json {
            print(try jsonLine(report))
        } else {
            print(
                """
                model \(model): \(quantization.map { "\($0.rawValue) against the checkpoint's weights" } ?? "as stored against \(self.reference!)") (float32 compute), \(report.positions) positions (\(sequences) windows × \(length) tokens)
                  KL divergence (nats): mean \(String(format: "%.6f", report.meanKL)), median \(String(format: "%.6f", report.medianKL)), 99th percentile \(String(format: "%.6f", report.p99KL)), largest \(String(format: "%.6f", report.maxKL))
                  same top token \(String(format: "%.2f", report.sameTopRate * 100))%; perplexity \(String(format: "%.4f", report.perplexityQuantized)) against \(String(format: "%.4f", report.perplexityReference)) (ratio \(String(format: "%.5f", report.perplexityQuantized / report.perplexityReference)))
                  weights \(report.weightBytesQuantized / 1_000_000) MB against \(report.weightBytesReference / 1_000_000) MB
                """)
        }
    }

    /// Blocks of 16 positions: window w's are w · per ..< (w + 1) · per.
    private var blocksPerWindow: Int { (length + 15) / 16 }

    private func blockTable(_ window: Int) -> [Int32] { (0..<blocksPerWindow).map { Int32(window * blocksPerWindow + $0) } }

    private func cache(for model: any CausalLanguageModel) throws -> PagedKVCache {
        try model.makeKVCache(blockCount: sequences * blocksPerWindow, blockSize: 16, dtype: .float32)
    }

    /// log-softmax of a row of logits, in float64.
    private static func logSoftmax(_ row: UnsafeMutableBufferPointer<Float>) -> [Double] {
        let normalizer = Activation.logSumExp(UnsafeBufferPointer(row))
        return row.map { Double($0) - normalizer }
    }
}
