import TandemTensor

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The keys and values of every decoder layer on this rank, in fixed-size blocks (vLLM's paged KV cache):
/// `blockCount` blocks per layer, each holding `blockSize` positions of this rank's kv heads. Which block holds
/// which positions of which sequence is the engine's business (block tables); the same block ids are used on
/// every tensor-parallel rank, each storing its own heads.
///
/// The whole pool is one anonymous mapping made at creation: nothing is allocated per request or step, and
/// resident memory grows (page by page, as blocks are first written) up to the pool's size and never past it —
/// so a large pool costs no start-up time.
public final class PagedKVCache {
    /// How each layer's blocks are laid out.
    public let layout: PagedKVLayout
    /// Blocks per layer.
    public let blockCount: Int
    /// Decoder layers.
    public let layerCount: Int
    /// Bytes of the whole pool (keys and values of every layer).
    public let byteCount: Int
    private let storage: UnsafeMutableRawPointer

    /// Bytes one block costs across every layer, keys and values (the unit `--kv-cache-memory` is divided by).
    public static func bytesPerBlock(layerCount: Int, layout: PagedKVLayout) -> Int {
        2 * layerCount * layout.blockElements * layout.dtype.byteSize
    }

    /// Maps `blockCount` blocks for each of `layerCount` layers.
    ///
    /// - Throws: `GenerationError.cacheUnavailable` when the system refuses the mapping.
    public init(layerCount: Int, blockCount: Int, layout: PagedKVLayout) throws(GenerationError) {
        precondition(layerCount > 0 && blockCount > 0, "a KV cache needs layers and blocks")
        self.layout = layout
        self.blockCount = blockCount
        self.layerCount = layerCount
        let perBlock = Self.bytesPerBlock(layerCount: layerCount, layout: layout)
        let (bytes, overflow) = perBlock.multipliedReportingOverflow(by: blockCount)
        guard !overflow else { throw .cacheUnavailable("\(blockCount) KV blocks of \(perBlock) bytes exceed any address space; give fewer") }
        byteCount = bytes
        guard let mapping = mmap(nil, byteCount, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), mapping != MAP_FAILED else {
            throw .cacheUnavailable("the system refused \(byteCount) bytes for \(blockCount) KV blocks (errno \(errno)); give a smaller KV cache")
        }
        storage = mapping
    }

    deinit { munmap(storage, byteCount) }

    private var layerBytes: Int { blockCount * layout.blockElements * layout.dtype.byteSize }

    /// The start of layer `layer`'s key blocks.
    func keys(_ layer: Int) -> UnsafeMutableRawPointer { storage + 2 * layer * layerBytes }
    /// The start of layer `layer`'s value blocks.
    func values(_ layer: Int) -> UnsafeMutableRawPointer { storage + (2 * layer + 1) * layerBytes }
}
