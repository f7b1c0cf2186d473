import TandemTensor

/// Gives requests their KV blocks (vLLM's `KVCacheManager`): finds the longest cached prefix of a request,
/// allocates the blocks a step needs, registers full blocks in the prefix cache, and frees a request's blocks.
/// Runs on the engine thread only.
final class KVCacheManager {
    let pool: BlockPool
    /// How positions fall into blocks.
    let layout: PagedKVLayout
    let prefixCaching: Bool
    /// Prompt tokens looked up and found in the prefix cache (for the hit rate).
    private(set) var queriedTokens = 0
    private(set) var hitTokens = 0

    init(blockCount: Int, layout: PagedKVLayout, prefixCaching: Bool) {
        pool = BlockPool(blockCount: blockCount)
        self.layout = layout
        self.prefixCaching = prefixCaching
    }

    /// Positions per block.
    var blockSize: Int { layout.blockSize }

    /// The cached blocks holding the longest prefix of `request`'s tokens, in order — always leaving at least one
    /// token to compute, whose logits the request needs.
    func cachedPrefix(_ request: EngineRequest) -> [Int] {
        guard prefixCaching else { return [] }
        let usable = (request.tokens.count - 1) / blockSize
        extendHashes(request, fullBlocks: usable)
        var blocks: [Int] = []
        for index in 0..<usable {
            guard let block = pool.cachedBlock(request.blockHashes[index]) else { break }
            blocks.append(block)
        }
        queriedTokens += request.tokens.count
        hitTokens += blocks.count * blockSize
        return blocks
    }

    /// Makes room for `newTokens` more positions of `request` after `prefix` (cached blocks it starts with, for
    /// a request being scheduled from the queue): takes the prefix blocks, allocates the rest, and registers the
    /// blocks these positions fill. Nothing changes when the pool is short.
    ///
    /// - Returns: false when too few blocks are free.
    func allocate(_ request: EngineRequest, newTokens: Int, prefix: [Int] = []) -> Bool {
        let computed = request.computedTokens + prefix.count * blockSize
        let needed = layout.blocks(holding: computed + newTokens) - request.blocks.count - prefix.count
        // Prefix blocks that are free now leave the free queue when taken.
        let reclaimed = prefix.reduce(0) { $0 + (pool.isFree($1) ? 1 : 0) }
        guard needed <= pool.freeCount - reclaimed else { return false }
        pool.touch(prefix)
        request.blocks += prefix
        request.registeredBlocks += prefix.count
        request.computedTokens = computed
        if needed > 0 { request.blocks += pool.allocate(needed)! }
        if prefixCaching { register(request, upTo: computed + newTokens) }
        return true
    }

    /// Returns `request`'s blocks to the pool (last first, so its tail is evicted before a shared head) and
    /// forgets its computed positions.
    func free(_ request: EngineRequest) {
        pool.free(request.blocks.reversed())
        request.blocks = []
        request.registeredBlocks = 0
        request.computedTokens = 0
    }

    /// Registers the blocks filled once `positions` positions are computed.
    private func register(_ request: EngineRequest, upTo positions: Int) {
        let full = positions / blockSize
        guard full > request.registeredBlocks else { return }
        extendHashes(request, fullBlocks: full)
        for index in request.registeredBlocks..<full { pool.cache(request.blocks[index], as: request.blockHashes[index]) }
        request.registeredBlocks = full
    }

    private func extendHashes(_ request: EngineRequest, fullBlocks: Int) {
        while request.blockHashes.count < fullBlocks {
            let index = request.blockHashes.count
            let tokens = request.tokens[(index * blockSize)..<((index + 1) * blockSize)]
            request.blockHashes.append(BlockHash(parent: request.blockHashes.last, tokens: tokens))
        }
    }
}
