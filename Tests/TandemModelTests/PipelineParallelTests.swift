import Foundation
import TandemComm
import TandemEngine
import TandemModel
import TandemParallel
import TandemTensor
import XCTest

/// The same checkpoint over pipeline stages (and tensor-parallel ranks within them), ranks on threads: each
/// stage loads only its layers, hidden states travel stage to stage, and the logits at every prefill and decode
/// step stay within 1e-4 of one rank; greedy generation through the engine picks the same tokens.
final class PipelineParallelTests: XCTestCase {
    private static let prompts = ["Hello world, this is Tandem.", "The quick brown fox", "1 2 3", "A pipeline of stages"]
    /// The tiny preset with 4 layers, so up to 4 stages.
    private static let fourLayers = ModelPreset.tiny.with { $0.layerCount = 4; $0.name = "tiny-4" }
    /// Qwen2 (biases, a tied head loaded on both ends), 4 layers.
    private static let tiedQwen2 = ModelFixtures.tiedQwen2.with { $0.layerCount = 4 }

    private func check(_ preset: ModelPreset, layouts: [(tp: Int, pp: Int)], expertPlacement: ExpertPlacement? = nil) throws {
        let directory = try ModelFixtures.write(preset, test: self)
        let (prompt, continuation) = (ModelFixtures.stepPrompt, ModelFixtures.stepContinuation)
        let single = try ModelFixtures.oneRankStepLogits(directory)
        let wholeBytes = try LlamaModel(model: directory, group: .single).weightBytes
        let greedy = SamplingParams(temperature: 0, maxTokens: 24, ignoreEOS: true)
        let singleTokens = try ModelFixtures.onRanks(1) { group in try LLM(model: directory, group: group).generate(Self.prompts, greedy).map(\.tokenIDs) }[0]
        for (tp, pp) in layouts {
            let label = "\(preset.name) tp \(tp) pp \(pp) experts \(expertPlacement?.rawValue ?? "split")"
            let staged = try ModelFixtures.pipelineStepLogits(
                directory, tensorParallelSize: tp, pipelineParallelSize: pp, expertPlacement: expertPlacement, prompt: prompt, continuation: continuation)
            XCTAssertEqual(staged.rows.count, single.count, "\(label): the driver gets every step's logits")
            XCTAssertLessThan(ModelFixtures.relativeError(staged.rows, single.map { $0.map(Double.init) }), 1e-4, label)
            // Each stage holds its share: with tp 1 the stages' weights add up to the whole (a tied table twice).
            if tp == 1 {
                let tiedCopy = preset.tieWordEmbeddings ? preset.vocabularySize * preset.hiddenSize * 2 : 0
                XCTAssertEqual(staged.weightBytes.reduce(0, +), wholeBytes + tiedCopy, "\(label): stage weights \(staged.weightBytes)")
            }
            let tokens = try ThreadLauncher.run(worldSize: tp * pp) { world in
                let llm = try LLM(config: EngineConfig(model: directory, pipelineParallelSize: pp, expertPlacement: expertPlacement), world: world)
                defer { llm.shutdown() }
                return try llm.generate(Self.prompts, greedy).map(\.tokenIDs)
            }
            for (rank, ids) in tokens.enumerated() { XCTAssertEqual(try ids.get(), singleTokens, "\(label) rank \(rank)") }
        }
    }

    func testLlamaOverPipelineStagesMatchesOneRank() throws {
        try check(Self.fourLayers, layouts: [(1, 2), (1, 3), (1, 4), (2, 2), (2, 4)])
    }

    func testQwen2WithTiedHeadOverPipelineStagesMatchesOneRank() throws {
        try check(Self.tiedQwen2, layouts: [(1, 2), (2, 2), (1, 4)])
    }

    func testMixtralOverPipelineStagesMatchesOneRank() throws {
        try check(ModelPreset.tinyMoE.with { $0.layerCount = 4 }, layouts: [(1, 2), (2, 2)])
        try check(ModelPreset.tinyMoE.with { $0.layerCount = 4 }, layouts: [(2, 2), (4, 2)], expertPlacement: .linear)
    }

    /// Data-parallel replicas (SPMD over threads, every rank calling `generate`): each replica is one of the tp × pp
    /// layouts whose logits the tests above check against one rank; here the front end routes the four prompts over
    /// the replicas and every rank gets one rank's greedy tokens — Llama, Qwen2 with its tied head, and Mixtral
    /// with experts split or placed whole, up to 8 ranks.
    func testDataParallelReplicasGenerateOneRanksTokens() throws {
        let greedy = SamplingParams(temperature: 0, maxTokens: 24, ignoreEOS: true)
        let mixtral = ModelPreset.tinyMoE.with { $0.layerCount = 4 }
        // With experts placed whole and dp > 1 they span the replicas (each rank holds 8 / (dp · tp) experts, or
        // none with 16 ranks' worth), which step together.
        let cases: [(ModelPreset, [(tp: Int, pp: Int, dp: Int)], ExpertPlacement?, ExpertDispatch)] = [
            (Self.fourLayers, [(1, 1, 2), (2, 1, 2), (1, 2, 2), (1, 1, 4), (2, 2, 2), (1, 1, 8)], nil, .allToAll),
            (Self.tiedQwen2, [(1, 1, 2), (2, 1, 2), (1, 2, 2)], nil, .allToAll),
            (mixtral, [(2, 1, 2)], nil, .allToAll),
            (mixtral, [(1, 1, 2), (2, 1, 2), (1, 2, 2), (2, 2, 2), (1, 1, 4)], .roundRobin, .allToAll),
            (mixtral, [(1, 1, 2), (2, 1, 2), (1, 2, 2), (2, 1, 4)], .linear, .allGather),
        ]
        for (preset, layouts, placement, dispatch) in cases {
            let directory = try ModelFixtures.write(preset, test: self)
            let single = try ModelFixtures.onRanks(1) { group in try LLM(model: directory, group: group).generate(Self.prompts, greedy).map(\.tokenIDs) }[0]
            for (tp, pp, dp) in layouts {
                let config = EngineConfig(
                    model: directory, threads: 1, pipelineParallelSize: pp, expertPlacement: placement, dataParallelSize: dp, expertDispatch: dispatch)
                let tokens = try ThreadLauncher.run(worldSize: tp * pp * dp) { world in
                    let llm = try LLM(config: config, world: world)
                    defer { llm.shutdown() }
                    // Twice: the replicas' drivers and workers are released after a call and serve the next.
                    XCTAssertEqual(try llm.generate(Self.prompts, greedy).map(\.tokenIDs), try llm.generate(Self.prompts, greedy).map(\.tokenIDs))
                    return (try llm.generate(Self.prompts, greedy).map(\.tokenIDs), llm.replicaStats.map(\.generatedTokens))
                }
                let label = "\(preset.name) tp \(tp) pp \(pp) dp \(dp) experts \(placement.map { "\($0.rawValue), \(dispatch.rawValue)" } ?? "split")"
                for (rank, result) in tokens.enumerated() { XCTAssertEqual(try result.get().0, single, "\(label) rank \(rank)") }
                let generated = try tokens[0].get().1
                XCTAssertEqual(generated.count, dp, label)
                XCTAssertEqual(generated.filter { $0 > 0 }.count, min(dp, Self.prompts.count), "\(label): the prompts are spread, \(generated)")
            }
        }
    }

    /// A stage given the wrong hidden states, or none, says what it needs.
    func testAStageWithoutHiddenStatesIsRefused() throws {
        let directory = try ModelFixtures.write(Self.fourLayers, test: self)
        let model = try LlamaModel(model: directory, group: .single, part: ModelPart(stage: 1, of: try PipelinePartition(layerCount: 4, stages: 2)))
        let cache = try model.makeKVCache(blockCount: 2, blockSize: 4, dtype: .float32)
        let batch = ForwardBatch(tokens: [1, 2], sequences: [ScheduledSequence(tokenCount: 2, computedTokens: 0, blockTable: [0], wantsLogits: true)])
        XCTAssertThrowsError(try model.forward(batch, cache: cache, hidden: nil, logitsTo: 0)) { error in
            XCTAssertTrue("\(error)".contains("layers 2–3 + norm and LM head needs the previous stage's float32 [2, 64] hidden states, got none"), "\(error)")
        }
        XCTAssertThrowsError(try model.forward(batch, cache: cache, hidden: Tensor(zeros: [3, 64], dtype: .float32), logitsTo: 0)) { error in
            XCTAssertTrue("\(error)".contains("got float32[3, 64]"), "\(error)")
        }
    }

    /// Layouts the model cannot take are refused before any rank starts, naming the numbers.
    func testBadLayoutsAreRefusedBeforeSpawning() throws {
        let directory = try ModelFixtures.write(.tiny, test: self)
        let program = WorkerProgram(path: "/nonexistent/tandem", arguments: ["worker"])
        func refusal(tp: Int, pp: Int) -> String {
            do {
                _ = try LLM(config: EngineConfig(model: directory, pipelineParallelSize: pp), tensorParallelSize: tp, workerProgram: program)
                return "no error"
            } catch {
                return "\(error)"
            }
        }
        XCTAssertTrue(refusal(tp: 1, pp: 3).contains("pp 3 is more than the model's 2 layers"), refusal(tp: 1, pp: 3))
        XCTAssertTrue(refusal(tp: 1, pp: 0).contains("pipelineParallelSize must be ≥ 1, got 0"), refusal(tp: 1, pp: 0))
        XCTAssertTrue(refusal(tp: 3, pp: 2).contains("tensor parallel size 3 does not split 4 attention heads"), refusal(tp: 3, pp: 2))
        XCTAssertTrue(refusal(tp: 0, pp: 2).contains("tensorParallelSize must be ≥ 1, got 0"), refusal(tp: 0, pp: 2))
        XCTAssertThrowsError(try LLM(config: EngineConfig(model: directory, pipelineParallelSize: 2), group: .single)) { error in
            XCTAssertTrue("\(error)".contains("for pipelineParallelSize 2 and dataParallelSize 1 use init(config:world:)"), "\(error)")
        }
        XCTAssertThrowsError(try LLM(config: EngineConfig(model: directory, dataParallelSize: 2), group: .single)) { error in
            XCTAssertTrue("\(error)".contains("for pipelineParallelSize 1 and dataParallelSize 2 use init(config:world:)"), "\(error)")
        }
        XCTAssertThrowsError(try LLM(config: EngineConfig(model: directory, dataParallelSize: 0), tensorParallelSize: 1, workerProgram: program)) { error in
            XCTAssertTrue("\(error)".contains("dataParallelSize must be ≥ 1, got 0"), "\(error)")
        }
        do {
            _ = try LLM(config: EngineConfig(model: directory, expertPlacement: .linear), tensorParallelSize: 2, workerProgram: program)
            XCTFail("expert parallelism on a dense model was accepted")
        } catch {
            XCTAssertTrue("\(error)".contains("is a dense model (model_type llama, no num_local_experts)"), "\(error)")
        }
    }
}
