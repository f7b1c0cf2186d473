import Foundation
import TandemModel
import TandemTensor
import XCTest

/// One forward pass over a mixed batch — a prompt's second chunk after its cached first, a decode step, a new
/// prompt — gives each sequence the logits it gets alone (each in a cache of its own, whole prompt at once),
/// within 1e-4, with bf16 and fp32 KV storage.
final class PagedForwardTests: XCTestCase {
    private func logits(_ model: LlamaModel, _ cache: PagedKVCache, _ runs: [(tokens: [Int], computed: Int, table: [Int32])]) throws -> [[Float]] {
        let batch = ForwardBatch(
            tokens: runs.flatMap(\.tokens),
            sequences: runs.map { ScheduledSequence(tokenCount: $0.tokens.count, computedTokens: $0.computed, blockTable: $0.table, wantsLogits: true) })
        let result = try XCTUnwrap(try model.forward(batch, cache: cache))
        let width = result.shape[1]
        let values = result.toDoubles().map { Float($0) }
        return (0..<runs.count).map { Array(values[($0 * width)..<(($0 + 1) * width)]) }
    }

    private func check(kvDType: DType) throws {
        let directory = try ModelFixtures.write(.tiny, test: self)
        let model = try LlamaModel(model: directory, group: .single)
        let first = Array(10..<31)  // 21 tokens: chunk of 13, then 8
        let second = Array(40..<49)  // 9 tokens, then one decode token
        let third = Array(60..<66)  // a new prompt
        // Alone: each sequence in its own cache, its prompt (and token) fed as one piece.
        func alone(_ tokens: [Int]) throws -> [Float] {
            let cache = try model.makeKVCache(blockCount: 8, blockSize: 4, dtype: kvDType)
            return try logits(model, cache, [(tokens, 0, (0..<8).map { Int32($0) })])[0]
        }
        let expected = [try alone(first), try alone(second + [77]), try alone(third)]
        // Shared: one cache, blocks interleaved; earlier steps fill the first chunk and the second prompt.
        let cache = try model.makeKVCache(blockCount: 24, blockSize: 4, dtype: kvDType)
        let tables: [[Int32]] = [[23, 2, 17, 5, 11, 8], [0, 21, 14], [3, 19]]
        _ = try logits(model, cache, [(Array(first[..<13]), 0, tables[0]), (second, 0, tables[1])])
        let mixed = try logits(model, cache, [(Array(first[13...]), 13, tables[0]), ([77], 9, tables[1]), (third, 0, tables[2])])
        for (index, (got, want)) in zip(mixed, expected).enumerated() {
            let error = ModelFixtures.relativeError([got], [want.map(Double.init)])
            XCTAssertLessThan(error, 1e-4, "sequence \(index), \(kvDType) KV: relative error \(error)")
        }
    }

    func testMixedBatchMatchesSequencesAloneWithBFloat16Storage() throws { try check(kvDType: .bfloat16) }

    func testMixedBatchMatchesSequencesAloneWithFloat32Storage() throws { try check(kvDType: .float32) }

    func testBatchesThatDoNotFitAreRefusedWithTheNumbers() throws {
        let directory = try ModelFixtures.write(.tiny, test: self)
        let model = try LlamaModel(model: directory, group: .single)
        let cache = try model.makeKVCache(blockCount: 4, blockSize: 4, dtype: .float32)
        func refusal(_ batch: ForwardBatch) -> String {
            do {
                _ = try model.forward(batch, cache: cache)
                return "accepted"
            } catch { return "\(error)" }
        }
        let one = { (count: Int, computed: Int, table: [Int32]) in ScheduledSequence(tokenCount: count, computedTokens: computed, blockTable: table, wantsLogits: true) }
        XCTAssertEqual(
            refusal(ForwardBatch(tokens: [1, 2, 3, 4, 5], sequences: [one(5, 0, [0])])),
            "invalid batch: sequence 0 needs 2 blocks of 4 for 5 positions but its table has 1")
        XCTAssertEqual(refusal(ForwardBatch(tokens: [1], sequences: [one(1, 0, [9])])), "invalid batch: sequence 0 names block 9; the cache has blocks 0 ..< 4")
        XCTAssertEqual(refusal(ForwardBatch(tokens: [1, 2], sequences: [one(1, 0, [0])])), "invalid batch: the sequences bring 1 tokens but the batch has 2")
        XCTAssertEqual(
            refusal(ForwardBatch(tokens: [1], sequences: [one(1, 512, [0, 1, 2, 3])])),
            "invalid batch: sequence 0 reaches position 513, past the model's context of 512")
    }
}
