import Foundation
import TandemEngine
import TandemModel
import XCTest

/// The engine's log-probabilities (`SamplingParams.logprobs`) against log-softmax of the logits of
/// tools/reference/llama_reference.py (numpy, float64), worked out here in Double.
final class LogprobsReferenceTests: XCTestCase {
    private struct Logits: Decodable { let logits: [[Double]] }

    func testLogprobsMatchTheReferenceLogSoftmax() async throws {
        let directory = try ModelFixtures.write(.tiny, dtype: .float32, test: self)
        let engine = try LLMEngine(config: EngineConfig(model: directory), tensorParallelSize: 1)
        defer { engine.shutdown() }
        let prompt = [5, 72, 101, 108, 108, 111]
        let count = 5
        var generated: [Int] = []
        var logprobs: [TokenLogprobs] = []
        for try await output in try engine.add(id: "r", promptTokenIDs: prompt, params: SamplingParams(temperature: 0, maxTokens: 6, ignoreEOS: true, logprobs: count)) {
            generated += output.newTokenIDs
            logprobs += output.logprobs
        }
        XCTAssertEqual(logprobs.count, generated.count, "one entry per generated token")
        let all = prompt + generated
        let reference = try JSONDecoder().decode(
            Logits.self, from: Reference.python("llama_reference.py", ["--model", directory, "--tokens", all.map(String.init).joined(separator: ",")]))
        for (step, entry) in logprobs.enumerated() {
            let row = reference.logits[prompt.count - 1 + step]
            let largest = row.max()!
            let normalizer = largest + log(row.reduce(0) { $0 + exp($1 - largest) })
            let expected = row.map { $0 - normalizer }
            let ranked = expected.indices.sorted { expected[$0] > expected[$1] || (expected[$0] == expected[$1] && $0 < $1) }
            XCTAssertEqual(entry.sampled.tokenID, generated[step])
            XCTAssertEqual(Double(entry.sampled.logprob), expected[generated[step]], accuracy: 1e-3, "step \(step): the sampled token")
            XCTAssertEqual(entry.top.count, count)
            XCTAssertEqual(entry.top.first?.tokenID, generated[step], "greedy: the sampled token is the most likely")
            for (rank, candidate) in entry.top.enumerated() {
                XCTAssertEqual(Double(candidate.logprob), expected[candidate.tokenID], accuracy: 1e-3, "step \(step) rank \(rank)")
                // Ids may differ only where the reference has a near-tie.
                if candidate.tokenID != ranked[rank] {
                    XCTAssertEqual(expected[candidate.tokenID], expected[ranked[rank]], accuracy: 1e-3, "step \(step) rank \(rank)")
                }
            }
            XCTAssertTrue(zip(entry.top, entry.top.dropFirst()).allSatisfy { $0.logprob >= $1.logprob }, "most likely first")
        }
    }
}
