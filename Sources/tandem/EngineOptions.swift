import ArgumentParser
import TandemEngine
import TandemTensor

/// The engine's options (vLLM's names): the KV cache's size, dtype and prefix caching, and the scheduler's limits.
struct EngineOptions: ParsableArguments {
    @Option(name: .customLong("kv-cache-memory"), help: "KV cache bytes per rank (suffixes K, M, G; default: enough for --max-num-seqs full contexts, at most half the host's available memory).")
    var kvCacheMemory: ByteCount?

    @Option(name: .customLong("num-kv-blocks"), help: "KV cache blocks per rank (instead of --kv-cache-memory).")
    var kvBlocks: Int?

    @Option(name: .customLong("kv-cache-dtype"), help: "KV cache storage: auto (the checkpoint's dtype), bfloat16, float16 or float32.")
    var kvCacheDtype: String = "auto"

    @Option(name: .customLong("block-size"), help: "Positions per KV block.")
    var blockSize: Int = 16

    @Flag(name: .customLong("no-prefix-caching"), help: "Do not reuse the KV blocks of equal prompt prefixes.")
    var noPrefixCaching = false

    @Option(name: .customLong("max-num-batched-tokens"), help: "Most tokens (prompt chunks and decodes) in one step.")
    var maxNumBatchedTokens: Int = 2048

    @Option(name: .customLong("max-num-seqs"), help: "Most requests running at once.")
    var maxNumSeqs: Int = 64

    @Flag(name: .customLong("log-stats"), help: "Print the engine's throughput, queue and KV cache usage to stderr every 5 s.")
    var logStats = false

    var cacheConfig: CacheConfig {
        CacheConfig(
            blockSize: blockSize, blockCount: kvBlocks, memoryBytes: kvCacheMemory?.value,
            dtype: kvCacheDtype == "auto" ? nil : DType(name: kvCacheDtype), prefixCaching: !noPrefixCaching)
    }

    var schedulerConfig: SchedulerConfig { SchedulerConfig(maxNumBatchedTokens: maxNumBatchedTokens, maxNumSeqs: maxNumSeqs) }

    func validate() throws {
        guard kvCacheDtype == "auto" || [.bfloat16, .float16, .float32].contains(DType(name: kvCacheDtype)) else {
            throw ValidationError("--kv-cache-dtype must be auto, bfloat16, float16 or float32, got \(kvCacheDtype)")
        }
        guard kvCacheMemory == nil || kvBlocks == nil else { throw ValidationError("give --kv-cache-memory or --num-kv-blocks, not both") }
        guard maxNumBatchedTokens >= 1 else { throw ValidationError("--max-num-batched-tokens must be ≥ 1, got \(maxNumBatchedTokens)") }
        guard maxNumSeqs >= 1 else { throw ValidationError("--max-num-seqs must be ≥ 1, got \(maxNumSeqs)") }
        do { try cacheConfig.validate() } catch { throw ValidationError("\(error)") }
    }
}
