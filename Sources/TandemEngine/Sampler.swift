import TandemTensor

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Picks the next token from a row of logits, as vLLM's sampler does: temperature 0 is greedy; otherwise
/// logits are divided by the temperature, cut to the `topK` largest (≤ 0: no cut), then to the smallest set
/// whose probability reaches `topP` (1: no cut; the most likely token always stays), renormalised and sampled.
///
/// The draw walks the candidates from the most likely down (ties: lower index first), as a sort would order
/// them — so a seed gives the tokens it gave before the engine, when the sampler sorted — but nothing sorts the
/// vocabulary: top-k is a selection, top-p pops a heap until the mass is reached, and without cuts a weighted
/// quickselect finds where the draw falls in expected linear time. The buffers are kept between calls (one
/// sampler per engine thread).
public struct Sampler {
    private var weights: [Double] = []
    private var heap: [Int32] = []
    private var kept: [Int32] = []

    public init() {}

    /// The index of the largest logit (the lowest index among equals).
    public static func greedy(_ logits: UnsafePointer<Float>, count: Int) -> Int {
        precondition(count > 0, "no logits to choose from")
        var best = 0
        for index in 1..<count where logits[index] > logits[best] { best = index }
        return best
    }

    /// A token drawn from `logits` (see the type's documentation for the rules).
    public mutating func sample<Generator: RandomNumberGenerator>(
        _ logits: UnsafePointer<Float>, count: Int, temperature: Float, topK: Int, topP: Float, using generator: inout Generator
    ) -> Int {
        precondition(count > 0, "no logits to choose from")
        if temperature <= 0 || topK == 1 { return Self.greedy(logits, count: count) }
        let largest = logits[Self.greedy(logits, count: count)]
        if weights.count < count { weights = [Double](repeating: 0, count: count) }
        for index in 0..<count { weights[index] = Double(expf((logits[index] - largest) / temperature)) }
        // Ranked before: the larger logit, then the lower index.
        func before(_ a: Int32, _ b: Int32) -> Bool {
            logits[Int(a)] > logits[Int(b)] || (logits[Int(a)] == logits[Int(b)] && a < b)
        }
        let cutsTopK = topK > 0 && topK < count
        heap.removeAll(keepingCapacity: true)
        heap.append(contentsOf: (0..<Int32(count)))
        if !cutsTopK && topP >= 1 {
            var total = 0.0
            for index in 0..<count { total += weights[index] }
            return Int(Self.weightedSelect(&heap, draw: Self.uniform(&generator) * total, weights: weights, by: before))
        }
        // The candidates: all, or the top k (selected, not sorted).
        if cutsTopK {
            Self.select(&heap, first: topK, by: before)
            heap.removeLast(count - topK)
        }
        var total = 0.0
        for index in heap { total += weights[Int(index)] }
        // Pop candidates best first until their mass reaches top-p (all of them for a top-k cut alone).
        Self.makeHeap(&heap, by: before)
        kept.removeAll(keepingCapacity: true)
        var (mass, share) = (0.0, 0.0)
        while !heap.isEmpty {
            let index = Self.popHeap(&heap, by: before)
            kept.append(index)
            mass += weights[Int(index)]
            share += weights[Int(index)] / total
            if topP < 1 && share >= Double(topP) { break }
        }
        var draw = Self.uniform(&generator) * mass
        for index in kept {
            draw -= weights[Int(index)]
            if draw < 0 { return Int(index) }
        }
        return Int(kept[kept.count - 1])
    }

    private static func uniform<Generator: RandomNumberGenerator>(_ generator: inout Generator) -> Double {
        Double(generator.next() >> 11) / Double(1 << 53)
    }

    /// The candidate at which `draw` is used up when walking `items` best first, subtracting each one's weight —
    /// found without ordering them: partition around a pivot, then continue in the side where the draw falls
    /// (a quickselect on cumulative weight). The last candidate when rounding leaves some draw over.
    private static func weightedSelect(
        _ items: inout [Int32], draw: Double, weights: [Double], by before: (Int32, Int32) -> Bool
    ) -> Int32 {
        var (low, high, remaining) = (0, items.count - 1, draw)
        while low < high {
            // Lomuto partition: [low, boundary) before the pivot, the pivot at `boundary`, the rest after.
            items.swapAt((low + high) / 2, high)
            let pivot = items[high]
            var (boundary, ahead) = (low, 0.0)
            for index in low..<high where before(items[index], pivot) {
                items.swapAt(index, boundary)
                ahead += weights[Int(items[boundary])]
                boundary += 1
            }
            items.swapAt(boundary, high)
            if remaining < ahead {
                high = boundary - 1
            } else {
                remaining -= ahead
                if remaining < weights[Int(pivot)] { return pivot }
                remaining -= weights[Int(pivot)]
                if boundary == high { return pivot }
                low = boundary + 1
            }
        }
        return items[low]
    }

    /// Moves the `first` best elements to the front (in no particular order): quickselect.
    private static func select(_ items: inout [Int32], first: Int, by before: (Int32, Int32) -> Bool) {
        var (low, high) = (0, items.count - 1)
        while low < high {
            let pivot = items[(low + high) / 2]
            var (i, j) = (low, high)
            while i <= j {
                while before(items[i], pivot) { i += 1 }
                while before(pivot, items[j]) { j -= 1 }
                if i <= j {
                    items.swapAt(i, j)
                    i += 1
                    j -= 1
                }
            }
            if first - 1 <= j { high = j } else if first - 1 >= i { low = i } else { return }
        }
    }

    private static func makeHeap(_ items: inout [Int32], by before: (Int32, Int32) -> Bool) {
        var index = items.count / 2
        while index > 0 {
            index -= 1
            siftDown(&items, from: index, by: before)
        }
    }

    private static func popHeap(_ items: inout [Int32], by before: (Int32, Int32) -> Bool) -> Int32 {
        let top = items[0]
        let last = items.removeLast()
        if !items.isEmpty {
            items[0] = last
            siftDown(&items, from: 0, by: before)
        }
        return top
    }

    private static func siftDown(_ items: inout [Int32], from start: Int, by before: (Int32, Int32) -> Bool) {
        var parent = start
        while true {
            var best = parent
            let (left, right) = (2 * parent + 1, 2 * parent + 2)
            if left < items.count && before(items[left], items[best]) { best = left }
            if right < items.count && before(items[right], items[best]) { best = right }
            if best == parent { return }
            items.swapAt(parent, best)
            parent = best
        }
    }
}
