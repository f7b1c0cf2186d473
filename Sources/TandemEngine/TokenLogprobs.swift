import Foundation
import TandemTensor

/// A sampled token's log-probability and the most likely tokens' at its position, from the model's raw logits
/// (before temperature, top-k or top-p: vLLM's default `raw_logprobs`).
public struct TokenLogprobs: Sendable, Equatable, Codable {
    /// A token and its log-probability.
    public struct Candidate: Sendable, Equatable, Codable {
        public let tokenID: Int
        public let logprob: Float
    }

    /// The token that was sampled.
    public let sampled: Candidate
    /// The `count` most likely tokens, most likely first (ties: lower id first).
    public let top: [Candidate]

    /// The most alternatives a request may ask for.
    public static let maximumCount = 20

    /// Log-softmax of `row` at `sampled` and at its `count` largest entries: O(vocabulary · (1 + count)) at
    /// worst, one pass in practice, no sort of the vocabulary.
    init(row: UnsafeBufferPointer<Float>, sampled: Int, count: Int) {
        let logNormalizer = Activation.logSumExp(row)
        func logprob(_ id: Int) -> Float { Float(Double(row[id]) - logNormalizer) }
        // The best `count` so far, best first; a new entry goes in by insertion.
        var best: [Int] = []
        best.reserveCapacity(count + 1)
        if count > 0 {
            for id in row.indices {
                let value = row[id]
                guard best.count < count || value > row[best[best.count - 1]] else { continue }
                var position = best.count
                while position > 0 && row[best[position - 1]] < value { position -= 1 }
                best.insert(id, at: position)
                if best.count > count { best.removeLast() }
            }
        }
        self.sampled = Candidate(tokenID: sampled, logprob: logprob(sampled))
        top = best.map { Candidate(tokenID: $0, logprob: logprob($0)) }
    }
}
