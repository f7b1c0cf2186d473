import CTandemKernels

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// How one layer's keys (or values) lie in a paged KV cache: blocks of `blockSize` positions, each block
/// `[keyValueHeads, blockSize, headDimension]` so that one head's positions within a block are one contiguous
/// run (a tile of keys is gathered with a few copies).
public struct PagedKVLayout: Sendable, Equatable {
    /// Positions per block.
    public let blockSize: Int
    /// The kv heads this rank stores.
    public let keyValueHeads: Int
    /// Elements per head vector.
    public let headDimension: Int
    /// Storage type: float32, bfloat16 or float16 (attention widens to fp32 and accumulates in fp32).
    public let dtype: DType

    public init(blockSize: Int, keyValueHeads: Int, headDimension: Int, dtype: DType) {
        precondition(blockSize > 0 && keyValueHeads > 0 && headDimension > 0, "a KV layout needs positive sizes")
        precondition([.float32, .bfloat16, .float16].contains(dtype), "KV storage is float32, bfloat16 or float16, not \(dtype)")
        self.blockSize = blockSize
        self.keyValueHeads = keyValueHeads
        self.headDimension = headDimension
        self.dtype = dtype
    }

    /// Blocks that hold `positions` positions.
    public func blocks(holding positions: Int) -> Int { (positions + blockSize - 1) / blockSize }

    /// Elements of one block (of keys, or of values) in one layer.
    public var blockElements: Int { keyValueHeads * blockSize * headDimension }

    /// Element offset of (`block`, `kvHead`, position `offset` within the block).
    @inline(__always)
    func elementOffset(block: Int, kvHead: Int, offset: Int) -> Int {
        ((block * keyValueHeads + kvHead) * blockSize + offset) * headDimension
    }
}

/// Causal attention over a paged KV cache (vLLM's paged attention, computed as FlashAttention does on a CPU):
/// queries are taken a tile at a time, keys and values a tile of positions at a time — gathered from the
/// blocks and widened to fp32 once per tile, then multiplied by BLAS — with an online softmax, so a long prompt
/// costs matrix products, not a scalar loop per query and position. One query position (decode) goes instead to
/// an AVX2 kernel that reads the cached keys and values in place, a block of all kv heads at a time.
public enum PagedAttention {
    /// Query positions per tile (times the heads sharing a kv head: the rows of one matrix product).
    static let queryTile = 32
    /// Key positions per tile.
    static let keyTile = 128

    /// Buffers for one call at a time: the query, key, value and score tiles, the running maxima, sums and
    /// output rows. Reused across calls (one per thread).
    public final class Scratch {
        let groupSize: Int
        let headDimension: Int
        let queries, keys, values, scores, accumulated, maxima, sums: UnsafeMutablePointer<Float>

        /// Scratch for `groupSize` query heads per kv head of `headDimension` elements.
        public init(groupSize: Int, headDimension: Int) {
            precondition(groupSize > 0 && headDimension > 0)
            self.groupSize = groupSize
            self.headDimension = headDimension
            let rows = PagedAttention.queryTile * groupSize
            queries = .allocate(capacity: rows * headDimension)
            keys = .allocate(capacity: PagedAttention.keyTile * headDimension)
            values = .allocate(capacity: PagedAttention.keyTile * headDimension)
            scores = .allocate(capacity: rows * PagedAttention.keyTile)
            accumulated = .allocate(capacity: rows * headDimension)
            maxima = .allocate(capacity: rows)
            sums = .allocate(capacity: rows)
        }

        /// The decode kernel's scores, maxima and sums for every head (the heads are known only at the call).
        private var decode: UnsafeMutableBufferPointer<Float> = .init(start: nil, count: 0)

        /// At least `floats` floats for the decode kernel, grown (once per size) as needed.
        func decodeBuffer(floats: Int) -> UnsafeMutablePointer<Float> {
            if decode.count < floats {
                decode.deallocate()
                decode = .allocate(capacity: floats)
            }
            return decode.baseAddress!
        }

        deinit {
            for buffer in [queries, keys, values, scores, accumulated, maxima, sums] { buffer.deallocate() }
            decode.deallocate()
        }
    }

    /// Writes one position's keys and values (`[keyValueHeads, headDimension]` fp32 each) into cache slot
    /// `slot` (block `slot / blockSize`, offset `slot % blockSize`), converting to the layout's dtype.
    public static func store(
        keys: UnsafePointer<Float>, values: UnsafePointer<Float>, slot: Int, keyCache: UnsafeMutableRawPointer,
        valueCache: UnsafeMutableRawPointer, layout: PagedKVLayout
    ) {
        let (block, offset) = slot.quotientAndRemainder(dividingBy: layout.blockSize)
        let d = layout.headDimension
        for head in 0..<layout.keyValueHeads {
            let element = layout.elementOffset(block: block, kvHead: head, offset: offset)
            write(keys + head * d, count: d, to: keyCache, element: element, dtype: layout.dtype)
            write(values + head * d, count: d, to: valueCache, element: element, dtype: layout.dtype)
        }
    }

    private static func write(_ source: UnsafePointer<Float>, count: Int, to base: UnsafeMutableRawPointer, element: Int, dtype: DType) {
        switch dtype {
        case .float32:
            (base.assumingMemoryBound(to: Float.self) + element).update(from: source, count: count)
        case .bfloat16:
            let target = base.assumingMemoryBound(to: UInt16.self) + element
            for index in 0..<count { target[index] = HalfConversion.bfloat16Bits(from: source[index]) }
        case .float16:
            let target = base.assumingMemoryBound(to: UInt16.self) + element
            for index in 0..<count { target[index] = HalfConversion.float16Bits(from: source[index]) }
        default:
            preconditionFailure("KV storage dtype \(dtype)")
        }
    }

    /// Attention of one sequence's `count` newest positions (their keys and values already stored): query i is
    /// at position `contextLength − count + i` and attends to positions 0 … its own — or, with a `window`, to
    /// its own and the `window − 1` before it (Mistral's sliding window) — read through `blockTable`. Query head
    /// h reads kv head `h / (heads / keyValueHeads)` (transformers' `repeat_kv`).
    ///
    /// - Parameters:
    ///   - queries: `count` rows of `[heads, headDimension]` fp32, `queryStride` floats apart.
    ///   - blockTable: the sequence's blocks in position order; at least `⌈contextLength / blockSize⌉`.
    ///   - output: `count` rows of `[heads, headDimension]` fp32, `outputStride` floats apart.
    public static func attend(
        queries: UnsafePointer<Float>, queryStride: Int, count: Int, heads: Int, contextLength: Int, keyCache: UnsafeRawPointer,
        valueCache: UnsafeRawPointer, layout: PagedKVLayout, blockTable: UnsafeBufferPointer<Int32>, output: UnsafeMutablePointer<Float>,
        outputStride: Int, scratch: Scratch, window: Int? = nil
    ) {
        let d = layout.headDimension
        let group = heads / layout.keyValueHeads
        precondition(heads % layout.keyValueHeads == 0, "\(heads) query heads do not group over \(layout.keyValueHeads) kv heads")
        precondition(scratch.groupSize == group && scratch.headDimension == d, "scratch made for another head layout")
        precondition(count >= 0 && count <= contextLength, "\(count) queries but a context of \(contextLength)")
        precondition(blockTable.count * layout.blockSize >= contextLength, "\(blockTable.count) blocks do not hold \(contextLength) positions")
        precondition(window.map { $0 > 0 } ?? true, "a sliding window of \(window ?? 0) positions")
        // The earliest key position a query at `position` sees.
        func firstVisible(_ position: Int) -> Int { window.map { max(0, position - $0 + 1) } ?? 0 }
        let scale = 1 / Float(d).squareRoot()
        if count == 1 && attendOne(
            queries: queries, heads: heads, position: contextLength - 1, firstVisible: firstVisible(contextLength - 1), scale: scale,
            keyCache: keyCache, valueCache: valueCache, layout: layout, blockTable: blockTable, output: output, scratch: scratch)
        {
            return
        }
        let firstPosition = contextLength - count
        for kvHead in 0..<layout.keyValueHeads {
            var tileStart = 0
            while tileStart < count {
                let rowsPerHead = min(queryTile, count - tileStart)
                let rows = rowsPerHead * group
                // Query rows ordered (position, head of the group).
                for index in 0..<rowsPerHead {
                    let source = queries + (tileStart + index) * queryStride + kvHead * group * d
                    (scratch.queries + index * group * d).update(from: source, count: group * d)
                }
                scratch.maxima.update(repeating: -.infinity, count: rows)
                scratch.sums.update(repeating: 0, count: rows)
                scratch.accumulated.update(repeating: 0, count: rows * d)
                let lastVisible = firstPosition + tileStart + rowsPerHead - 1
                var keyStart = firstVisible(firstPosition + tileStart)
                while keyStart <= lastVisible {
                    let width = min(keyTile, lastVisible + 1 - keyStart)
                    gather(keyCache, into: scratch.keys, from: keyStart, count: width, kvHead: kvHead, layout: layout, blockTable: blockTable)
                    gather(valueCache, into: scratch.values, from: keyStart, count: width, kvHead: kvHead, layout: layout, blockTable: blockTable)
                    Matmul.gemm(
                        m: rows, n: width, k: d, alpha: scale, a: scratch.queries, lda: d, b: scratch.keys, ldb: d, transposeB: true,
                        c: scratch.scores, ldc: width)
                    for row in 0..<rows {
                        let position = firstPosition + tileStart + row / group
                        // Columns of this key tile the row sees: from its window's start to itself.
                        let from = max(0, firstVisible(position) - keyStart)
                        let visible = min(width, position - keyStart + 1)
                        let scores = scratch.scores + row * width
                        guard visible > from else {
                            scores.update(repeating: 0, count: width)
                            continue
                        }
                        var largest = scratch.maxima[row]
                        for index in from..<visible { largest = max(largest, scores[index]) }
                        let correction = expf(scratch.maxima[row] - largest)
                        var sum: Float = 0
                        for index in from..<visible {
                            let weight = expf(scores[index] - largest)
                            scores[index] = weight
                            sum += weight
                        }
                        if from > 0 { scores.update(repeating: 0, count: from) }
                        if visible < width { (scores + visible).update(repeating: 0, count: width - visible) }
                        scratch.maxima[row] = largest
                        scratch.sums[row] = scratch.sums[row] * correction + sum
                        if correction != 1 {
                            let accumulated = scratch.accumulated + row * d
                            for index in 0..<d { accumulated[index] *= correction }
                        }
                    }
                    Matmul.gemm(
                        m: rows, n: d, k: width, a: scratch.scores, lda: width, b: scratch.values, ldb: d, transposeB: false, beta: 1,
                        c: scratch.accumulated, ldc: d)
                    keyStart += width
                }
                for index in 0..<rowsPerHead {
                    let target = output + (tileStart + index) * outputStride + kvHead * group * d
                    for head in 0..<group {
                        let row = index * group + head
                        let inverse = 1 / scratch.sums[row]
                        let accumulated = scratch.accumulated + row * d
                        for element in 0..<d { target[head * d + element] = accumulated[element] * inverse }
                    }
                }
                tileStart += rowsPerHead
            }
        }
    }

    private static let hasAVX2 = tandem_has_avx2() != 0

    /// One query position (decode) by the AVX2 kernel, which reads the keys and values where they lie, a block of
    /// all kv heads at a time, instead of gathering widened tiles for BLAS: a product of 1–8 rows gains nothing
    /// from BLAS, and the copies cost more than the products. False, having done nothing, where the kernel does not
    /// apply (no AVX2, a head size that is not a multiple of 8).
    private static func attendOne(
        queries: UnsafePointer<Float>, heads: Int, position: Int, firstVisible: Int, scale: Float, keyCache: UnsafeRawPointer,
        valueCache: UnsafeRawPointer, layout: PagedKVLayout, blockTable: UnsafeBufferPointer<Int32>, output: UnsafeMutablePointer<Float>,
        scratch: Scratch
    ) -> Bool {
        let d = layout.headDimension
        guard hasAVX2, d % 8 == 0 else { return false }
        let storage: Int32 =
            switch layout.dtype {
            case .bfloat16: TANDEM_KV_BFLOAT16
            case .float16: TANDEM_KV_FLOAT16
            default: TANDEM_KV_FLOAT32
            }
        let done = tandem_attend_one_avx2(
            storage, queries, layout.keyValueHeads, heads / layout.keyValueHeads, d, keyCache, valueCache, blockTable.baseAddress!,
            layout.blockSize, firstVisible, position + 1, scale, keyTile, scratch.decodeBuffer(floats: heads * (keyTile + 2)), output)
        precondition(done == 1, "the decode attention kernel refused a layout it was chosen for")
        return true
    }

    /// Copies positions `start ..< start + count` of one kv head into `target` (`[count, headDimension]` fp32),
    /// a block's run at a time.
    private static func gather(
        _ cache: UnsafeRawPointer, into target: UnsafeMutablePointer<Float>, from start: Int, count: Int, kvHead: Int, layout: PagedKVLayout,
        blockTable: UnsafeBufferPointer<Int32>
    ) {
        let d = layout.headDimension
        var position = start
        while position < start + count {
            let (blockIndex, offset) = position.quotientAndRemainder(dividingBy: layout.blockSize)
            let run = min(layout.blockSize - offset, start + count - position)
            let element = layout.elementOffset(block: Int(blockTable[blockIndex]), kvHead: kvHead, offset: offset)
            let destination = target + (position - start) * d
            switch layout.dtype {
            case .float32:
                destination.update(from: cache.assumingMemoryBound(to: Float.self) + element, count: run * d)
            case .bfloat16, .float16:
                Widen.copy(layout.dtype, from: cache.assumingMemoryBound(to: UInt16.self) + element, count: run * d, into: destination)
            default:
                preconditionFailure("KV storage dtype \(layout.dtype)")
            }
            position += run
        }
    }
}
