import Foundation
import TandemComm
import TandemEngine
import TandemModel
import TandemParallel
import TandemTokenizer
import TandemTensor
import XCTest

/// A tiny checkpoint and engines over it, on one rank or on tp × pp ranks as threads (rank 0 drives, the others
/// run the worker loop).
enum EngineFixtures {
    /// Writes the tiny preset (or `preset`) into a fresh directory removed after the test.
    static func tinyModel(_ test: XCTestCase, preset: ModelPreset = .tiny) throws -> String {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tandem-engine-\(UUID().uuidString)")
        test.addTeardownBlock { try? FileManager.default.removeItem(at: directory) }
        try ModelWriter.write(preset, dtype: .bfloat16, seed: 1, to: directory.path)
        return directory.path
    }

    /// Runs `body` with an engine over `directory` split `tensorParallelSize` ways in each of
    /// `pipelineParallelSize` stages (a MoE model's experts placed whole with `expertPlacement`) and returns its
    /// result; checks afterwards that every KV block is free again.
    static func withEngine<Value: Sendable>(
        _ directory: String, tensorParallelSize: Int = 1, pipelineParallelSize: Int = 1, cache: CacheConfig,
        scheduler: SchedulerConfig = SchedulerConfig(), precision: ComputePrecision = .float32, expertPlacement: ExpertPlacement? = nil,
        _ body: @escaping @Sendable (EngineCore) throws -> Value
    ) throws -> Value {
        Matmul.setBLASThreads(1)
        let run: @Sendable (ReplicaGroups) throws -> Value? = { groups in
            let layers = try ModelConfig(directory: directory).layerCount
            var part = ModelPart(stage: groups.stage, of: try PipelinePartition(layerCount: layers, stages: pipelineParallelSize))
            part.expertPlacement = expertPlacement
            let model = try LlamaModel(model: directory, group: groups.tensor, part: part, precision: precision)
            let runner = try ModelRunner(
                model: model, groups: groups, cacheConfig: cache, maxNumSeqs: scheduler.maxNumSeqs, localRanks: groups.layout.worldSize)
            let plans = try groups.world.map { try BroadcastQueue(world: $0, writer: 0, name: "plans") }
            defer { plans?.shutdown() }
            guard (groups.world?.rank ?? 0) == 0 else {
                try WorkerLoop.run(runner, plans: plans!)
                return nil
            }
            let tokenizer = try BytePairTokenizer(directory: directory)
            let core = EngineCore(
                runner: runner, tokenizer: tokenizer, eosTokenIDs: Set(model.config.eosTokenIDs), scheduler: scheduler,
                prefixCaching: cache.prefixCaching, plans: plans)
            defer { core.shutdown() }
            let value = try body(core)
            XCTAssertEqual(core.blockUsage.used, 0, "every KV block is free once no request is left")
            return value
        }
        let worldSize = tensorParallelSize * pipelineParallelSize
        if worldSize == 1 { return try run(.single)! }
        let results = try ThreadLauncher.run(worldSize: worldSize) { world in
            let groups = try ReplicaGroups(world: world, pipelineParallelSize: pipelineParallelSize)
            defer { groups.shutdown() }
            return try run(groups)
        }
        return try results[0].get()!
    }

    /// Steps `core` until no request is left; the final output of each, by id.
    static func drain(_ core: EngineCore) throws -> [String: RequestOutput] {
        var finished: [String: RequestOutput] = [:]
        while core.unfinishedCount > 0 {
            for output in try core.step() { if let final = output.final { finished[output.requestID] = final.output } }
        }
        return finished
    }
}

extension EngineFixtures {
    /// Runs `body` with the engine of `LLM(config:world:)` over tp × pp × dp thread ranks — with dp > 1 the front
    /// end of the replicas — while the other ranks run their loops; checks afterwards that every replica's KV
    /// blocks are free again.
    static func withEngineClient<Value: Sendable>(
        _ directory: String, tensorParallelSize: Int = 1, pipelineParallelSize: Int = 1, dataParallelSize: Int = 1, cache: CacheConfig,
        scheduler: SchedulerConfig = SchedulerConfig(), expertPlacement: ExpertPlacement? = nil, expertDispatch: ExpertDispatch = .allToAll,
        _ body: @escaping @Sendable (any EngineClient) throws -> Value
    ) throws -> Value {
        Matmul.setBLASThreads(1)
        let worldSize = tensorParallelSize * pipelineParallelSize * dataParallelSize
        let config = EngineConfig(
            model: directory, threads: 1, cache: cache, scheduler: scheduler, localRanks: worldSize, pipelineParallelSize: pipelineParallelSize,
            expertPlacement: expertPlacement, dataParallelSize: dataParallelSize, expertDispatch: expertDispatch)
        let results = try ThreadLauncher.run(worldSize: worldSize) { world -> Value? in
            let llm = try LLM(config: config, world: world)
            defer { llm.shutdown() }
            guard let engine = llm.engine else {
                try llm.runWorkerLoop()
                return nil
            }
            let value: Value
            do {
                value = try body(engine)
                XCTAssertEqual(engine.replicaStats.count, dataParallelSize)
                for (replica, stats) in engine.replicaStats.enumerated() {
                    XCTAssertEqual(stats.usedBlocks, 0, "replica \(replica): every KV block is free once no request is left")
                    if dataParallelSize > 1 { XCTAssertGreaterThan(stats.generatedTokens, 0, "replica \(replica) ran requests") }
                }
            } catch {
                engine.shutdown()
                throw error
            }
            try engine.releaseWorkers()
            return value
        }
        return try results[0].get()!
    }
}
