import Foundation
import TandemEngine
import TandemTensor
import XCTest

/// Greedy choice, the temperature/top-k/top-p rules, and seeded reproducibility.
final class SamplingTests: XCTestCase {
    private func draw(_ logits: [Float], temperature: Float, topK: Int = 0, topP: Float = 1, seed: UInt64, times: Int) -> [Int] {
        var generator = SeededGenerator(seed: seed)
        var sampler = Sampler()
        return logits.withUnsafeBufferPointer { buffer in
            (0..<times).map { _ in
                sampler.sample(buffer.baseAddress!, count: logits.count, temperature: temperature, topK: topK, topP: topP, using: &generator)
            }
        }
    }

    func testGreedyAndTheCutsThatReduceToIt() {
        let logits: [Float] = [0.5, 3, 3, -1, 2]
        XCTAssertEqual(logits.withUnsafeBufferPointer { Sampler.greedy($0.baseAddress!, count: 5) }, 1, "lowest index among equal maxima")
        XCTAssertEqual(Set(draw(logits, temperature: 0, seed: 1, times: 50)), [1])
        XCTAssertEqual(Set(draw(logits, temperature: 2, topK: 1, seed: 1, times: 50)), [1])
        XCTAssertEqual(Set(draw([0, 5, 1], temperature: 1, topP: 0.01, seed: 1, times: 50)), [1], "top-p keeps at least the best")
        XCTAssertTrue(Set(draw(logits, temperature: 5, topK: 3, seed: 2, times: 500)).isSubset(of: [1, 2, 4]))
    }

    func testTemperatureOneFollowsTheSoftmaxAndSeedsReproduce() {
        // softmax([0, ln 3]) = [0.25, 0.75].
        let tokens = draw([0, Float(log(3.0))], temperature: 1, seed: 42, times: 20_000)
        let share = Double(tokens.filter { $0 == 1 }.count) / 20_000
        XCTAssertEqual(share, 0.75, accuracy: 0.015)
        XCTAssertEqual(tokens, draw([0, Float(log(3.0))], temperature: 1, seed: 42, times: 20_000))
        XCTAssertNotEqual(tokens, draw([0, Float(log(3.0))], temperature: 1, seed: 43, times: 20_000))
        // top-p 0.75 over [0.5, 0.3, 0.2]: keeps the first two (0.5 < 0.75 ≤ 0.8), renormalised to 5:3.
        let cut = draw([Float(log(0.5)), Float(log(0.3)), Float(log(0.2))], temperature: 1, topP: 0.75, seed: 7, times: 20_000)
        XCTAssertFalse(cut.contains(2))
        XCTAssertEqual(Double(cut.filter { $0 == 0 }.count) / 20_000, 0.625, accuracy: 0.015)
    }

    func testTopKKeepsExactlyTheKLargestWithTiesToTheLowerIndex() {
        // Logits 0…99 shuffled, with a tie at the cut: top-5 of a large temperature must be the five largest.
        var logits = (0..<100).map { Float($0) }
        logits.swapAt(3, 97)
        logits[10] = 95  // ties with the element holding 95; the lower index (10) ranks first
        let seen = Set(draw(logits, temperature: 100, topK: 5, seed: 3, times: 4000))
        let largest = Set([99, 98, 3, 96, 10])
        XCTAssertEqual(seen, largest)
    }

    func testTopPAfterTopKCountsOnlyTheKeptMass() {
        // top-k 2 keeps [0.5, 0.3] (mass renormalised to 0.625, 0.375); top-p 0.6 then keeps only the first.
        let logits = [Float(log(0.5)), Float(log(0.3)), Float(log(0.2))]
        XCTAssertEqual(Set(draw(logits, temperature: 1, topK: 2, topP: 0.6, seed: 5, times: 2000)), [0])
        XCTAssertEqual(Set(draw(logits, temperature: 1, topK: 2, topP: 0.7, seed: 5, times: 2000)), [0, 1])
    }

    /// The rule written the plain way — sort every candidate (larger logit first, then lower index), cut, walk
    /// the sorted weights — as the sampler before the engine did; a seed must give the same tokens.
    private static func sortingReference<Generator: RandomNumberGenerator>(
        _ logits: [Float], temperature: Float, topK: Int, topP: Float, using generator: inout Generator
    ) -> Int {
        var order = Array(logits.indices)
        order.sort { logits[$0] > logits[$1] || (logits[$0] == logits[$1] && $0 < $1) }
        if temperature <= 0 || topK == 1 { return order[0] }
        if topK > 0 && topK < logits.count { order.removeLast(logits.count - topK) }
        var weights = order.map { Double(expf((logits[$0] - logits[order[0]]) / temperature)) }
        var total = weights.reduce(0, +)
        if topP < 1 {
            var (kept, mass) = (0, 0.0)
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

    /// Random rows (with ties), temperatures and cuts: the sampler draws what sorting would, token for token.
    func testDrawsAsSortingTheCandidatesWould() {
        var random = SeededGenerator(seed: 2026)
        var sampler = Sampler()
        var (compared, differing) = (0, 0)
        for trial in 0..<300 {
            let count = [2, 7, 100, 4096][trial % 4]
            // Logits on a coarse grid so equal values (ties) are common.
            let logits = (0..<count).map { _ in Float(Int.random(in: -40...40, using: &random)) / 4 }
            let temperature = [0.3, 0.7, 1, 1.5][Int.random(in: 0..<4, using: &random)] as Float
            let topK = [0, 0, 1, 5, 50][Int.random(in: 0..<5, using: &random)]
            let topP = [1, 1, 0.9, 0.5][Int.random(in: 0..<4, using: &random)] as Float
            let seed = UInt64.random(in: 0...UInt64.max, using: &random)
            var (ours, theirs) = (SeededGenerator(seed: seed), SeededGenerator(seed: seed))
            for _ in 0..<20 {
                let token = logits.withUnsafeBufferPointer {
                    sampler.sample($0.baseAddress!, count: count, temperature: temperature, topK: topK, topP: topP, using: &ours)
                }
                let expected = Self.sortingReference(logits, temperature: temperature, topK: topK, topP: topP, using: &theirs)
                compared += 1
                if token != expected { differing += 1 }
            }
        }
        XCTAssertEqual(differing, 0, "\(differing) of \(compared) draws differ from the sorting rule")
    }
}
