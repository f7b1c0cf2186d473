import Foundation
import TandemComm
import TandemEngine
import TandemModel
import TandemTensor
import XCTest

/// Checkpoints written by `ModelWriter` for the model tests, and tensor-parallel runs on threads.
enum ModelFixtures {
    /// Qwen2 layout with q/k/v biases, a tied head and one kv head (replicated at every tp > 1).
    static let tiedQwen2 = ModelPreset(
        name: "test-qwen2", hiddenSize: 64, intermediateSize: 96, layerCount: 2, headCount: 4, keyValueHeadCount: 1,
        vocabularySize: 300, maxPositions: 64, tieWordEmbeddings: true)
        .with { $0.modelType = "qwen2" }

    /// Wide enough for k-quant rows (256-value super-blocks) whole at tp 2: width 512, MLP 1024, 8 heads of 64.
    static let kQuantWide = ModelPreset.tiny.with {
        $0.hiddenSize = 512
        $0.intermediateSize = 1024
        $0.headCount = 8
        $0.keyValueHeadCount = 4
        $0.name = "tiny-k"
    }

    /// Writes `preset` into a fresh directory removed after the test.
    static func write(_ preset: ModelPreset, dtype: DType = .bfloat16, seed: UInt64 = 1, test: XCTestCase) throws -> String {
        let directory = try Reference.temporaryDirectory(test)
        try ModelWriter.write(preset, dtype: dtype, seed: seed, to: directory.path)
        return directory.path
    }

    /// Runs `body` on each rank of a tensor-parallel group of `size` threads (size 1: no group) and returns
    /// the ranks' results in rank order.
    static func onRanks<Value: Sendable>(_ size: Int, _ body: @escaping @Sendable (TensorParallelGroup) throws -> Value) throws -> [Value] {
        Matmul.setBLASThreads(1)
        if size == 1 { return [try body(.single)] }
        return try ThreadLauncher.run(worldSize: size) { group in try body(TensorParallelGroup(group)) }.map { try $0.get() }
    }

    /// The prompt and continuation the parallel tests step through.
    static let stepPrompt = [5, 17, 99, 200, 3, 42]
    static let stepContinuation = [7, 8, 9, 10]

    /// `stepLogits` of `stepPrompt` and `stepContinuation` on one rank: what every split must match.
    static func oneRankStepLogits(_ directory: String) throws -> [[Float]] {
        try onRanks(1) { group in try stepLogits(LlamaModel(model: directory, group: group), prompt: stepPrompt, continuation: stepContinuation) }[0]
    }

    /// The logits of the last prompt token (prefill), then of each of `continuation` fed one at a time
    /// (decode through the paged cache — fp32, blocks of 4 in a scrambled order): one row per step on group
    /// rank 0, none on the other ranks (logits are gathered to rank 0).
    static func stepLogits(_ model: LlamaModel, prompt: [Int], continuation: [Int]) throws -> [[Float]] {
        let blockSize = 4
        let positions = prompt.count + continuation.count
        let blocks = (positions + blockSize - 1) / blockSize
        let cache = try model.makeKVCache(blockCount: blocks + 2, blockSize: blockSize, dtype: .float32)
        let table = (0..<blocks).reversed().map { Int32($0 + 2) }
        func run(_ tokens: [Int], after computed: Int) throws -> [Float]? {
            let sequence = ScheduledSequence(tokenCount: tokens.count, computedTokens: computed, blockTable: table, wantsLogits: true)
            return try model.forward(ForwardBatch(tokens: tokens, sequences: [sequence]), cache: cache)?.toDoubles().map { Float($0) }
        }
        var rows = [try run(prompt, after: 0)]
        for (index, token) in continuation.enumerated() { rows.append(try run([token], after: prompt.count + index)) }
        return rows.compactMap { $0 }
    }

    /// max |a − b| / max |b| over all rows.
    static func relativeError(_ a: [[Float]], _ b: [[Double]]) -> Double {
        var difference = 0.0
        var scale = 0.0
        for (rowA, rowB) in zip(a, b) {
            for (x, y) in zip(rowA, rowB) {
                difference = max(difference, abs(Double(x) - y))
                scale = max(scale, abs(y))
            }
        }
        return difference / scale
    }
}

extension ModelPreset {
    func with(_ change: (inout ModelPreset) -> Void) -> ModelPreset {
        var copy = self
        change(&copy)
        return copy
    }
}
