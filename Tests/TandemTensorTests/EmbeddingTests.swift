import TandemTensor
import XCTest

/// Lookup of whole and sharded vocabularies: the shards' outputs sum to the whole table's.
final class EmbeddingTests: XCTestCase {
    func testShardsSumToTheWholeTableAndBadTokensAreReported() {
        let (vocabulary, hidden) = (10, 3)
        let table = (0..<(vocabulary * hidden)).map { Double($0) / 4 }  // exact in bf16
        let whole = Tensor(converting: table, shape: [vocabulary, hidden], dtype: .bfloat16)
        let tokens = [9, 0, 4, 4, 7]
        let expected = Tensor(zeros: [tokens.count, hidden], dtype: .float32)
        XCTAssertTrue(Embedding.lookup(tokens, weight: whole, vocabularySize: vocabulary, into: expected))
        XCTAssertEqual(expected.toDoubles(), tokens.flatMap { token in (0..<hidden).map { table[token * hidden + $0] } })
        // Three shards of 4, 4 and 2 rows.
        var sum = [Double](repeating: 0, count: tokens.count * hidden)
        for (first, rows) in [(0, 4), (4, 4), (8, 2)] {
            let shard = Tensor(converting: Array(table[(first * hidden)..<((first + rows) * hidden)]), shape: [rows, hidden], dtype: .float32)
            let part = Tensor(zeros: [tokens.count, hidden], dtype: .float32)
            XCTAssertTrue(Embedding.lookup(tokens, weight: shard, firstToken: first, vocabularySize: vocabulary, into: part))
            sum = zip(sum, part.toDoubles()).map { $0 + $1 }
        }
        XCTAssertEqual(sum, expected.toDoubles())
        XCTAssertFalse(Embedding.lookup([3, 10], weight: whole, vocabularySize: vocabulary, into: Tensor(zeros: [2, hidden], dtype: .float32)))
    }
}
