import Foundation
import TandemComm
import TandemEngine
import TandemModel
import TandemParallel
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

    /// Logits of the last prompt token, then of each continuation token fed alone, through runners on every
    /// rank of a tp × pp world (blocks of 4 in a scrambled order), activations carried as `activationSync` says; rank 0's
    /// rows.
    static func pipelineStepLogits(
        _ directory: String, tensorParallelSize tp: Int, pipelineParallelSize pp: Int, expertPlacement: ExpertPlacement? = nil, prompt: [Int],
        continuation: [Int], activationSync: ActivationSync = .float32
    ) throws -> (rows: [[Float]], weightBytes: [Int]) {
        Matmul.setBLASThreads(1)
        let blocks = (prompt.count + continuation.count + 3) / 4
        let table = (0..<blocks).reversed().map { Int32($0 + 2) }
        let results = try ThreadLauncher.run(worldSize: tp * pp) { world in
            let groups = try ReplicaGroups(world: world, pipelineParallelSize: pp, activationSync: activationSync)
            defer { groups.shutdown() }
            let layers = try ModelConfig(directory: directory).layerCount
            var part = ModelPart(stage: groups.stage, of: try PipelinePartition(layerCount: layers, stages: pp))
            part.expertPlacement = expertPlacement
            let model = try LlamaModel(model: directory, group: groups.tensor, part: part)
            let runner = try ModelRunner(
                model: model, groups: groups, cacheConfig: CacheConfig(blockSize: 4, blockCount: blocks + 2, dtype: .float32), maxNumSeqs: 1, localRanks: tp * pp)
            var rows: [[Float]] = []
            func run(_ tokens: [Int], after computed: Int) throws {
                let batch = ForwardBatch(
                    tokens: tokens, sequences: [ScheduledSequence(tokenCount: tokens.count, computedTokens: computed, blockTable: table, wantsLogits: true)])
                let local = try runner.execute(batch)
                XCTAssertNil(local, "with stages, logits come from the last stage")
                if world.rank == 0 { rows.append(try runner.receiveLogits(of: batch).wait().toDoubles().map { Float($0) }) }
            }
            try run(prompt, after: 0)
            for (index, token) in continuation.enumerated() { try run([token], after: prompt.count + index) }
            try runner.flush()
            return (rows, model.weightBytes)
        }
        let values = try results.map { try $0.get() }
        return (values[0].0, values.map(\.1))
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
