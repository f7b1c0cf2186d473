import Foundation
import TandemComm
import TandemTensor

/// How big the paged KV cache is and what it stores (vLLM's `CacheConfig`).
public struct CacheConfig: Sendable, Equatable, Codable {
    /// Positions per block.
    public var blockSize: Int
    /// Blocks per rank; nil: from `memoryBytes`.
    public var blockCount: Int?
    /// Bytes of KV cache per rank; nil with no `blockCount`: enough for `maxNumSeqs` full contexts, but at most
    /// half of this host's available memory divided among its ranks (the rest is the weights' and a margin).
    public var memoryBytes: Int?
    /// Storage type; nil ("auto"): the checkpoint's weight dtype (bf16 for a bf16 checkpoint).
    public var dtype: DType?
    /// Reuse the KV blocks of equal prompt prefixes (vLLM's automatic prefix caching).
    public var prefixCaching: Bool

    public init(blockSize: Int = 16, blockCount: Int? = nil, memoryBytes: Int? = nil, dtype: DType? = nil, prefixCaching: Bool = true) {
        self.blockSize = blockSize
        self.blockCount = blockCount
        self.memoryBytes = memoryBytes
        self.dtype = dtype
        self.prefixCaching = prefixCaching
    }

    /// Checks the values a user can give.
    ///
    /// - Throws: `EngineError.invalidCacheConfig` naming the value.
    public func validate() throws(EngineError) {
        guard blockSize >= 1, blockSize <= 1024 else { throw .invalidCacheConfig("block size must be in 1 … 1024, got \(blockSize)") }
        if let blockCount, blockCount < 1 { throw .invalidCacheConfig("block count must be ≥ 1, got \(blockCount)") }
        if let memoryBytes, memoryBytes < 1 { throw .invalidCacheConfig("memory must be positive, got \(memoryBytes) bytes") }
        if let dtype, ![.float32, .bfloat16, .float16].contains(dtype) {
            throw .invalidCacheConfig("dtype must be float32, bfloat16 or float16, got \(dtype)")
        }
    }

    /// The blocks this rank can afford for `bytesPerBlock`-byte blocks.
    ///
    /// - Parameters:
    ///   - fullBatchBlocks: blocks for `maxNumSeqs` requests filling the context (the default's upper bound).
    ///   - localRanks: ranks sharing this host's memory.
    /// - Throws: `EngineError.invalidCacheConfig` when not even one block fits.
    func blocks(bytesPerBlock: Int, fullBatchBlocks: Int, localRanks: Int) throws(EngineError) -> Int {
        let physical = Int(ProcessInfo.processInfo.physicalMemory)
        if let blockCount {
            let (bytes, overflow) = blockCount.multipliedReportingOverflow(by: bytesPerBlock)
            guard !overflow, bytes <= physical else {
                throw .invalidCacheConfig(
                    "\(blockCount) blocks of \(bytesPerBlock) bytes are more than this host's \(physical) bytes of memory; give fewer")
            }
            return blockCount
        }
        if let memoryBytes, memoryBytes > physical {
            throw .invalidCacheConfig("\(memoryBytes) bytes are more than this host's \(physical) bytes of memory; give less")
        }
        let fullBatch = fullBatchBlocks.multipliedReportingOverflow(by: bytesPerBlock)
        let budget = memoryBytes ?? min(fullBatch.overflow ? Int.max : fullBatch.partialValue, SystemMemory.availableBytes() / 2 / max(localRanks, 1))
        let count = budget / bytesPerBlock
        guard count >= 1 else {
            throw .invalidCacheConfig("\(budget) bytes hold no block of \(bytesPerBlock) bytes (\(blockSize) positions of every layer); give more memory")
        }
        return count
    }
}
