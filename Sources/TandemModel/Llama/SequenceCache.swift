import TandemTensor

/// The key/value caches of one sequence, one per decoder layer, holding this rank's kv heads.
public final class SequenceCache {
    let layers: [KVCache]

    init(layerCount: Int, keyValueHeads: Int, headDimension: Int, capacity: Int) {
        layers = (0..<layerCount).map { _ in KVCache(keyValueHeads: keyValueHeads, headDimension: headDimension, capacity: capacity) }
    }

    /// Positions cached so far (the position of the next token).
    public var length: Int { layers.first?.length ?? 0 }
    /// The most positions the cache holds.
    public var capacity: Int { layers.first?.capacity ?? 0 }
}
