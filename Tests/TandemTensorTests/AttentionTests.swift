import Foundation
import TandemTensor
import XCTest

/// Causal grouped-query attention over the cache against a direct evaluation in Double.
final class AttentionTests: XCTestCase {
    func testCausalGroupedQueryAttentionMatchesADirectEvaluation() {
        let (heads, kvHeads, d) = (4, 2, 8)
        let cache = KVCache(keyValueHeads: kvHeads, headDimension: d, capacity: 16)
        func values(_ count: Int, _ salt: Double) -> [Float] { (0..<count).map { Float(sin(Double($0) * 0.37 + salt)) } }
        // Two positions already cached (an earlier step), then a prefill of three.
        let keys = values(5 * kvHeads * d, 1)
        let vals = values(5 * kvHeads * d, 2)
        keys.withUnsafeBufferPointer { k in vals.withUnsafeBufferPointer { v in
            cache.append(keys: k.baseAddress!, values: v.baseAddress!, count: 2)
            cache.append(keys: k.baseAddress! + 2 * kvHeads * d, values: v.baseAddress! + 2 * kvHeads * d, count: 3)
        } }
        let queries = values(3 * heads * d, 3)
        var output = [Float](repeating: .nan, count: 3 * heads * d)
        var scores = [Float](repeating: 0, count: 16)
        queries.withUnsafeBufferPointer { q in
            Attention.causal(queries: q.baseAddress!, count: 3, heads: heads, cache: cache, output: &output, scores: &scores)
        }
        for index in 0..<3 {
            let position = 2 + index
            for head in 0..<heads {
                let kv = head / (heads / kvHeads)
                let query = (0..<d).map { Double(queries[(index * heads + head) * d + $0]) }
                let logits = (0...position).map { p in
                    (0..<d).map { query[$0] * Double(keys[(p * kvHeads + kv) * d + $0]) }.reduce(0, +) / Double(d).squareRoot()
                }
                let weights = logits.map { exp($0 - logits.max()!) }
                let total = weights.reduce(0, +)
                for k in 0..<d {
                    let expected = (0...position).map { weights[$0] / total * Double(vals[($0 * kvHeads + kv) * d + k]) }.reduce(0, +)
                    XCTAssertEqual(Double(output[(index * heads + head) * d + k]), expected, accuracy: 1e-5, "query \(index) head \(head)")
                }
            }
        }
    }
}
