/// The keys and values of one attention layer for one sequence, in fp32: `[position, kvHead, headDimension]`,
/// appended as the sequence grows, up to `capacity` positions.
public final class KVCache: @unchecked Sendable {
    public let keyValueHeads: Int
    public let headDimension: Int
    public let capacity: Int
    /// Positions stored so far.
    public private(set) var length = 0
    let keys: UnsafeMutablePointer<Float>
    let values: UnsafeMutablePointer<Float>

    public init(keyValueHeads: Int, headDimension: Int, capacity: Int) {
        precondition(keyValueHeads > 0 && headDimension > 0 && capacity >= 0)
        self.keyValueHeads = keyValueHeads
        self.headDimension = headDimension
        self.capacity = capacity
        let size = max(capacity * keyValueHeads * headDimension, 1)
        keys = .allocate(capacity: size)
        values = .allocate(capacity: size)
    }

    deinit {
        keys.deallocate()
        values.deallocate()
    }

    /// Floats per position.
    var stride: Int { keyValueHeads * headDimension }

    /// Appends `count` positions of keys and values (each `[count, keyValueHeads, headDimension]`).
    public func append(keys newKeys: UnsafePointer<Float>, values newValues: UnsafePointer<Float>, count: Int) {
        precondition(length + count <= capacity, "KV cache holds \(capacity) positions; \(length) + \(count) do not fit")
        (keys + length * stride).update(from: newKeys, count: count * stride)
        (values + length * stride).update(from: newValues, count: count * stride)
        length += count
    }

    /// Forgets every position (the cache is reused for another sequence).
    public func reset() { length = 0 }
}

/// Causal scaled dot-product attention over a `KVCache`, with grouped-query heads.
public enum Attention {
    /// Attention of the last `count` positions of `cache` (their keys and values already appended): query i
    /// (absolute position `cache.length − count + i`) attends to positions 0 … its own. Query head h reads
    /// kv head `h / (heads / keyValueHeads)`, as in transformers' `repeat_kv`.
    ///
    /// - Parameters:
    ///   - queries: `[count, heads, headDimension]`, fp32.
    ///   - output: `[count, heads, headDimension]`, fp32.
    ///   - scores: scratch of at least `cache.length` floats.
    public static func causal(
        queries: UnsafePointer<Float>, count: Int, heads: Int, cache: KVCache, output: UnsafeMutablePointer<Float>,
        scores: UnsafeMutablePointer<Float>
    ) {
        let d = cache.headDimension
        precondition(heads % cache.keyValueHeads == 0, "\(heads) query heads do not group over \(cache.keyValueHeads) kv heads")
        precondition(count <= cache.length, "\(count) queries but only \(cache.length) cached positions")
        let group = heads / cache.keyValueHeads
        let scale = 1 / Float(d).squareRoot()
        let first = cache.length - count
        for index in 0..<count {
            let visible = first + index + 1
            for head in 0..<heads {
                let query = queries + (index * heads + head) * d
                let kvHead = head / group
                for position in 0..<visible {
                    scores[position] = dot(query, cache.keys + position * cache.stride + kvHead * d, d) * scale
                }
                Activation.softmax(scores, count: visible)
                let out = output + (index * heads + head) * d
                out.update(repeating: 0, count: d)
                for position in 0..<visible {
                    let value = cache.values + position * cache.stride + kvHead * d
                    let weight = scores[position]
                    for k in 0..<d { out[k] += weight * value[k] }
                }
            }
        }
    }

    /// Σ a[i]·b[i], eight lanes at a time (the compiler does not vectorise a float sum on its own: it would
    /// reorder the additions).
    @inline(__always)
    private static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ count: Int) -> Float {
        var lanes = SIMD8<Float>()
        var index = 0
        while index + 8 <= count {
            lanes += UnsafeRawPointer(a + index).loadUnaligned(as: SIMD8<Float>.self) * UnsafeRawPointer(b + index).loadUnaligned(as: SIMD8<Float>.self)
            index += 8
        }
        var sum = lanes.sum()
        while index < count {
            sum += a[index] * b[index]
            index += 1
        }
        return sum
    }
}
