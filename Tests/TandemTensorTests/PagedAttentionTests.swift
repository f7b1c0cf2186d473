import Foundation
import TandemTensor
import XCTest

/// Paged attention against a direct evaluation in Double over the same keys and values held in plain arrays:
/// blocks in a scrambled order, several query and key tiles, grouped-query heads, 16-bit and fp32 storage.
final class PagedAttentionTests: XCTestCase {
    private func values(_ count: Int, _ salt: Double) -> [Float] { (0..<count).map { Float(sin(Double($0) * 0.37 + salt)) } }

    /// Stores `context` positions through a scrambled block table, attends the last `count`, and compares
    /// every output element with softmax(q·k/√d)·v in Double (keys and values rounded to the storage dtype).
    private func check(
        dtype: DType, context: Int, count: Int, heads: Int = 4, kvHeads: Int = 2, d: Int = 8, blockSize: Int = 16, window: Int? = nil,
        tolerance: Double
    ) {
        let layout = PagedKVLayout(blockSize: blockSize, keyValueHeads: kvHeads, headDimension: d, dtype: dtype)
        let blocksNeeded = (context + blockSize - 1) / blockSize
        let blockCount = blocksNeeded + 3
        // A table that is neither in order nor starting at zero.
        let table = (0..<blocksNeeded).map { Int32((($0 * 7) + 2) % blockCount) }
        XCTAssertEqual(Set(table).count, blocksNeeded)
        let bytes = blockCount * layout.blockElements * dtype.byteSize
        let keyCache = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
        let valueCache = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
        defer { keyCache.deallocate(); valueCache.deallocate() }
        let keys = values(context * kvHeads * d, 1)
        let vals = values(context * kvHeads * d, 2)
        for position in 0..<context {
            let slot = Int(table[position / blockSize]) * blockSize + position % blockSize
            keys.withUnsafeBufferPointer { k in vals.withUnsafeBufferPointer { v in
                PagedAttention.store(
                    keys: k.baseAddress! + position * kvHeads * d, values: v.baseAddress! + position * kvHeads * d, slot: slot, keyCache: keyCache,
                    valueCache: valueCache, layout: layout)
            } }
        }
        func stored(_ value: Float) -> Double {
            switch dtype {
            case .bfloat16: Double(HalfConversion.float(fromBFloat16: HalfConversion.bfloat16Bits(from: value)))
            case .float16: Double(HalfConversion.float(fromFloat16: HalfConversion.float16Bits(from: value)))
            default: Double(value)
            }
        }
        let queries = values(count * heads * d, 3)
        var output = [Float](repeating: .nan, count: count * heads * d)
        let scratch = PagedAttention.Scratch(groupSize: heads / kvHeads, headDimension: d)
        queries.withUnsafeBufferPointer { q in table.withUnsafeBufferPointer { t in
            PagedAttention.attend(
                queries: q.baseAddress!, queryStride: heads * d, count: count, heads: heads, contextLength: context, keyCache: keyCache,
                valueCache: valueCache, layout: layout, blockTable: t, output: &output, outputStride: heads * d, scratch: scratch,
                window: window)
        } }
        var worst = 0.0
        for index in 0..<count {
            let position = context - count + index
            for head in 0..<heads {
                let kv = head / (heads / kvHeads)
                let query = (0..<d).map { Double(queries[(index * heads + head) * d + $0]) }
                // The keys this query sees: all earlier ones, or its window (itself and window − 1 before).
                let seen = Array((window.map { max(0, position - $0 + 1) } ?? 0)...position)
                let logits = seen.map { p in
                    (0..<d).map { query[$0] * stored(keys[(p * kvHeads + kv) * d + $0]) }.reduce(0, +) / Double(d).squareRoot()
                }
                let weights = logits.map { exp($0 - logits.max()!) }
                let total = weights.reduce(0, +)
                for k in 0..<d {
                    let expected = seen.indices.map { weights[$0] / total * stored(vals[(seen[$0] * kvHeads + kv) * d + k]) }.reduce(0, +)
                    worst = max(worst, abs(Double(output[(index * heads + head) * d + k]) - expected))
                }
            }
        }
        XCTAssertLessThan(worst, tolerance, "\(dtype), context \(context), \(count) queries, window \(window.map(String.init) ?? "none")")
    }

    func testPrefillOfOneTileMatchesDirectEvaluation() {
        check(dtype: .float32, context: 5, count: 3, tolerance: 1e-5)
    }

    func testDecodeAfterALongContextMatchesDirectEvaluation() {
        check(dtype: .float32, context: 300, count: 1, tolerance: 1e-5)
    }

    func testPrefillAcrossManyQueryAndKeyTilesMatchesDirectEvaluation() {
        // 200 queries (7 query tiles) over 333 positions (3 key tiles), the first 133 already cached.
        check(dtype: .float32, context: 333, count: 200, tolerance: 1e-5)
    }

    func testSixteenBitStorageIsWidenedExactly() {
        check(dtype: .bfloat16, context: 150, count: 40, tolerance: 1e-5)
        check(dtype: .float16, context: 150, count: 40, tolerance: 1e-5)
    }

    func testFewQueriesForEveryStorageType() {
        // Decode-sized calls (1–3 queries), a head size that is not a multiple of 8, a context of one position.
        for dtype in [DType.float32, .bfloat16, .float16] {
            check(dtype: dtype, context: 70, count: 3, heads: 6, kvHeads: 2, d: 12, blockSize: 5, tolerance: 1e-5)
            check(dtype: dtype, context: 1, count: 1, tolerance: 1e-5)
        }
    }

    /// Mistral's sliding window: windows smaller than, equal to and larger than a key tile (128), inside and
    /// across query tiles, decode and prefill, a window of one.
    func testSlidingWindowSeesOnlyItsPositions() {
        for window in [1, 7, 128, 200] {
            check(dtype: .float32, context: 333, count: 200, window: window, tolerance: 1e-5)
            check(dtype: .bfloat16, context: 300, count: 1, blockSize: 4, window: window, tolerance: 1e-5)
        }
        check(dtype: .float32, context: 40, count: 40, window: 1000, tolerance: 1e-5)
    }

    /// The one-position (decode) kernel: head sizes of real models, groups of 1 to 12 query heads per kv head
    /// (beyond the kernel's 8 at a time), contexts inside one tile and across several, each storage type, windows.
    func testDecodeOfRealHeadSizesAndGroups() {
        for dtype in [DType.float32, .bfloat16, .float16] {
            for (heads, kvHeads) in [(2, 2), (4, 2), (8, 1), (24, 2)] {
                check(dtype: dtype, context: 300, count: 1, heads: heads, kvHeads: kvHeads, d: 64, tolerance: 1e-5)
            }
            check(dtype: dtype, context: 17, count: 1, heads: 4, kvHeads: 1, d: 128, blockSize: 16, tolerance: 1e-5)
            check(dtype: dtype, context: 260, count: 1, heads: 4, kvHeads: 2, d: 64, blockSize: 7, window: 130, tolerance: 1e-5)
        }
    }

    func testOneKeyValueHeadForEveryQueryHeadAndOddBlockSize() {
        check(dtype: .float32, context: 70, count: 70, heads: 3, kvHeads: 1, d: 12, blockSize: 5, tolerance: 1e-5)
    }
}
