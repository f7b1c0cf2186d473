#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A small, fast, seedable generator (SplitMix64), so a request's `seed` reproduces its tokens.
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Picks the next token from a row of logits, as vLLM's sampler does: temperature 0 is greedy; otherwise
/// logits are divided by the temperature, cut to the `topK` largest (≤ 0: no cut), then to the smallest set
/// whose probability reaches `topP` (1: no cut; the most likely token always stays), renormalised and sampled.
public enum Sampler {
    /// The index of the largest logit (the lowest index among equals).
    public static func greedy(_ logits: UnsafePointer<Float>, count: Int) -> Int {
        precondition(count > 0, "no logits to choose from")
        var best = 0
        for index in 1..<count where logits[index] > logits[best] { best = index }
        return best
    }

    /// A token drawn from `logits` (see the type's documentation for the rules).
    public static func sample<Generator: RandomNumberGenerator>(
        _ logits: UnsafePointer<Float>, count: Int, temperature: Float, topK: Int, topP: Float, using generator: inout Generator
    ) -> Int {
        precondition(count > 0, "no logits to choose from")
        if temperature <= 0 || topK == 1 { return greedy(logits, count: count) }
        // Candidates by descending logit (ties: lower index first), cut to top-k.
        var order = Array(0..<count)
        order.sort { logits[$0] > logits[$1] || (logits[$0] == logits[$1] && $0 < $1) }
        if topK > 0 && topK < count { order.removeLast(count - topK) }
        let largest = logits[order[0]]
        var weights = order.map { Double(expf((logits[$0] - largest) / temperature)) }
        var total = weights.reduce(0, +)
        if topP < 1 {
            var kept = 0
            var mass = 0.0
            while kept < weights.count {
                mass += weights[kept] / total
                kept += 1
                if mass >= Double(topP) { break }
            }
            weights.removeLast(weights.count - kept)
            order.removeLast(order.count - kept)
            total = weights.reduce(0, +)
        }
        var draw = Double(generator.next() >> 11) / Double(1 << 53) * total
        for (index, weight) in weights.enumerated() {
            draw -= weight
            if draw < 0 { return order[index] }
        }
        return order[weights.count - 1]
    }
}
