/// What the attention layers need to know about a forward pass, worked out once for every layer: each row's
/// position and cache slot, and each sequence's rows, context and block table (vLLM's attention metadata).
struct AttentionMetadata {
    /// Position of each row (token) of the batch.
    let positions: [Int]
    /// Cache slot (`block · blockSize + offset`) each row's keys and values are stored in.
    let slots: [Int]
    /// Each sequence's first row, row count, context after the pass and blocks.
    let sequences: [(firstRow: Int, count: Int, contextLength: Int, blockTable: [Int32])]

    /// Checks `batch` against `cache` and the model's context and derives the metadata.
    ///
    /// - Throws: `GenerationError.invalidBatch` naming the sequence and the numbers at fault.
    init(_ batch: ForwardBatch, cache: PagedKVCache, maxPositions: Int) throws(GenerationError) {
        let blockSize = cache.layout.blockSize
        let total = batch.sequences.reduce(0) { $0 + $1.tokenCount }
        guard total == batch.tokens.count else {
            throw .invalidBatch("the sequences bring \(total) tokens but the batch has \(batch.tokens.count)")
        }
        var positions: [Int] = []
        var slots: [Int] = []
        var sequences: [(Int, Int, Int, [Int32])] = []
        positions.reserveCapacity(total)
        slots.reserveCapacity(total)
        for (index, sequence) in batch.sequences.enumerated() {
            guard sequence.tokenCount > 0, sequence.computedTokens >= 0 else {
                throw .invalidBatch("sequence \(index) has \(sequence.tokenCount) new tokens after \(sequence.computedTokens) cached ones")
            }
            guard sequence.contextLength <= maxPositions else {
                throw .invalidBatch("sequence \(index) reaches position \(sequence.contextLength), past the model's context of \(maxPositions)")
            }
            let blocksNeeded = cache.layout.blocks(holding: sequence.contextLength)
            guard sequence.blockTable.count >= blocksNeeded else {
                throw .invalidBatch(
                    "sequence \(index) needs \(blocksNeeded) blocks of \(blockSize) for \(sequence.contextLength) positions but its table has \(sequence.blockTable.count)")
            }
            if let bad = sequence.blockTable.first(where: { $0 < 0 || Int($0) >= cache.blockCount }) {
                throw .invalidBatch("sequence \(index) names block \(bad); the cache has blocks 0 ..< \(cache.blockCount)")
            }
            sequences.append((positions.count, sequence.tokenCount, sequence.contextLength, sequence.blockTable))
            for position in sequence.computedTokens..<sequence.contextLength {
                positions.append(position)
                slots.append(Int(sequence.blockTable[position / blockSize]) * blockSize + position % blockSize)
            }
        }
        self.positions = positions
        self.slots = slots
        self.sequences = sequences
    }
}
