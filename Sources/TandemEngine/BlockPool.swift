/// The identity of a full block's contents for prefix caching: a hash of the parent block's identity and the
/// block's tokens (vLLM's block-hash chain), so equal identities mean equal whole prefixes. 128 bits from two
/// independently seeded 64-bit mixes make an accidental collision negligible (about 2⁻⁶⁴ at a billion blocks).
public struct BlockHash: Hashable, Sendable {
    let high: UInt64
    let low: UInt64

    /// The identity of a block holding `tokens` after the prefix identified by `parent` (nil: the first block).
    public init(parent: BlockHash?, tokens: ArraySlice<Int>) {
        var high: UInt64 = parent?.high ?? 0x243F_6A88_85A3_08D3
        var low: UInt64 = parent?.low ?? 0x1319_8A2E_0370_7344
        for token in tokens {
            high = Self.mix(high ^ UInt64(bitPattern: Int64(token)), 0x9E37_79B9_7F4A_7C15)
            low = Self.mix(low &+ UInt64(bitPattern: Int64(token)), 0xC2B2_AE3D_27D4_EB4F)
        }
        self.high = Self.mix(high ^ UInt64(tokens.count), 0x1656_67B1_9E37_79F9)
        self.low = Self.mix(low ^ UInt64(tokens.count), 0x27D4_EB2F_1656_67C5)
    }

    private static func mix(_ value: UInt64, _ multiplier: UInt64) -> UInt64 {
        var z = (value ^ (value >> 31)) &* multiplier
        z = (z ^ (z >> 29)) &* 0xBF58_476D_1CE4_E5B9
        return z ^ (z >> 32)
    }
}

/// The KV blocks of one model group and who holds them (vLLM's `BlockPool`): a reference count per block, a
/// free queue in least-recently-freed order, and the cached full blocks by content hash.
///
/// A block whose count drops to zero joins the end of the free queue but keeps its hash, so a later request
/// with the same prefix can take it back (`touch`); `allocate` takes blocks from the front of the queue and
/// only then forgets the hash of a block it evicts. Runs on the engine thread only.
public final class BlockPool {
    /// Blocks in the pool.
    public let blockCount: Int
    private var referenceCounts: [Int]
    private var hashes: [BlockHash?]
    private var cached: [BlockHash: Int] = [:]
    // The free queue: a doubly linked list over block ids (−1: none), so a cached block leaves it in O(1).
    private var previous: [Int]
    private var next: [Int]
    private var head = -1
    private var tail = -1
    /// Blocks in the free queue (cached or not).
    public private(set) var freeCount = 0

    public init(blockCount: Int) {
        precondition(blockCount > 0, "a block pool needs blocks")
        self.blockCount = blockCount
        referenceCounts = [Int](repeating: 0, count: blockCount)
        hashes = [BlockHash?](repeating: nil, count: blockCount)
        previous = [Int](repeating: -1, count: blockCount)
        next = [Int](repeating: -1, count: blockCount)
        for block in 0..<blockCount { append(block) }
    }

    /// Blocks held by some request.
    public var usedCount: Int { blockCount - freeCount }

    /// `count` blocks, each with a reference count of one, evicting the least recently freed; nil (and
    /// nothing taken) when fewer are free.
    public func allocate(_ count: Int) -> [Int]? {
        guard count <= freeCount else { return nil }
        var blocks: [Int] = []
        blocks.reserveCapacity(count)
        for _ in 0..<count {
            let block = head
            remove(block)
            if let hash = hashes[block] {
                cached[hash] = nil
                hashes[block] = nil
            }
            referenceCounts[block] = 1
            blocks.append(block)
        }
        return blocks
    }

    /// Whether `block` is in the free queue (held by no request).
    public func isFree(_ block: Int) -> Bool { referenceCounts[block] == 0 }

    /// The cached block holding the prefix `hash` identifies, if any.
    public func cachedBlock(_ hash: BlockHash) -> Int? { cached[hash] }

    /// Takes one more reference to each of `blocks` (cached blocks a new request reuses), taking free ones out
    /// of the free queue.
    public func touch(_ blocks: [Int]) {
        for block in blocks {
            if referenceCounts[block] == 0 { remove(block) }
            referenceCounts[block] += 1
        }
    }

    /// Records that `block` (held, full) holds the prefix `hash`; a block already cached for it stays the one
    /// found (two requests that computed the same block in one step keep one copy cached).
    public func cache(_ block: Int, as hash: BlockHash) {
        precondition(referenceCounts[block] > 0, "block \(block) is cached while free")
        guard hashes[block] == nil, cached[hash] == nil else { return }
        hashes[block] = hash
        cached[hash] = block
    }

    /// Drops one reference to each of `blocks`, in order; blocks no longer held join the end of the free queue
    /// (callers pass a request's blocks last first, so its tail is evicted before its shared head).
    public func free(_ blocks: [Int]) {
        for block in blocks {
            precondition(referenceCounts[block] > 0, "block \(block) freed twice")
            referenceCounts[block] -= 1
            if referenceCounts[block] == 0 { append(block) }
        }
    }

    private func append(_ block: Int) {
        previous[block] = tail
        next[block] = -1
        if tail >= 0 { next[tail] = block } else { head = block }
        tail = block
        freeCount += 1
    }

    private func remove(_ block: Int) {
        let (before, after) = (previous[block], next[block])
        if before >= 0 { next[before] = after } else { head = after }
        if after >= 0 { previous[after] = before } else { tail = before }
        previous[block] = -1
        next[block] = -1
        freeCount -= 1
    }
}
