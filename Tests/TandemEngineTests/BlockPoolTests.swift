import TandemEngine
import XCTest

/// The block pool's reference counts, least-recently-freed eviction and prefix-cache bookkeeping.
final class BlockPoolTests: XCTestCase {
    private func hash(_ tokens: [Int], after parent: BlockHash? = nil) -> BlockHash { BlockHash(parent: parent, tokens: tokens[...]) }

    func testAllocationTakesNothingWhenThePoolIsShort() {
        let pool = BlockPool(blockCount: 4)
        let taken = pool.allocate(3)!
        XCTAssertEqual(Set(taken).count, 3)
        XCTAssertNil(pool.allocate(2))
        XCTAssertEqual(pool.freeCount, 1, "a refused allocation takes nothing")
        pool.free(taken)
        XCTAssertEqual(pool.freeCount, 4)
    }

    func testFreedCachedBlocksAreFoundAgainUntilEvictedLeastRecentlyFreedFirst() {
        let pool = BlockPool(blockCount: 3)
        let first = pool.allocate(1)!, second = pool.allocate(1)!
        let (a, b) = (hash([1, 2]), hash([3, 4]))
        pool.cache(first[0], as: a)
        pool.cache(second[0], as: b)
        pool.free(first)
        pool.free(second)
        XCTAssertEqual(pool.cachedBlock(a), first[0])
        // Taking a cached free block back keeps it; the next allocations use the never-cached block, then the
        // least recently freed cached one.
        pool.touch([pool.cachedBlock(b)!])
        let fresh = pool.allocate(1)!
        XCTAssertNotEqual(fresh, first)
        XCTAssertEqual(pool.cachedBlock(a), first[0], "still cached: a never-used block was free")
        XCTAssertEqual(pool.allocate(1), first, "then the least recently freed block is evicted")
        XCTAssertNil(pool.cachedBlock(a))
        XCTAssertEqual(pool.cachedBlock(b), second[0], "a held block stays cached")
    }

    func testSharedBlocksReturnToTheFreeQueueOnlyWhenTheLastHolderFrees() {
        let pool = BlockPool(blockCount: 2)
        let block = pool.allocate(1)!
        pool.touch(block)
        pool.free(block)
        XCTAssertFalse(pool.isFree(block[0]))
        pool.free(block)
        XCTAssertTrue(pool.isFree(block[0]))
        XCTAssertEqual(pool.usedCount, 0)
    }

    func testHashChainsDependOnTheWholePrefix() {
        let root1 = hash([1, 2, 3, 4]), root2 = hash([1, 2, 3, 5])
        XCTAssertEqual(hash([9, 9], after: root1), hash([9, 9], after: root1))
        XCTAssertNotEqual(hash([9, 9], after: root1), hash([9, 9], after: root2))
        XCTAssertNotEqual(hash([9, 9]), hash([9, 9], after: root1))
        XCTAssertNotEqual(hash([1, 2]), hash([2, 1]))
    }

    func testStepPlansRoundTripAndMalformedOnesAreRefused() throws {
        let batch = ForwardBatchFixture.sample
        XCTAssertEqual(try StepPlan(decoding: StepPlan.step(batch).encoded()), .step(batch))
        XCTAssertEqual(try StepPlan(decoding: StepPlan.shutdown.encoded()), .shutdown)
        var cut = StepPlan.step(batch).encoded()
        cut.removeLast(4)
        XCTAssertThrowsError(try StepPlan(decoding: cut)) { error in
            guard case EngineError.malformedPlan = error else { return XCTFail("\(error)") }
        }
        XCTAssertThrowsError(try StepPlan(decoding: [1, 2, 3, 4, 5, 6, 7, 8]))
        // Found by fuzz-step-plan: a wants-logits word of 72 read as true, and a shutdown with words after it
        // read as a shutdown — plans no driver sends, accepted as if they were others.
        var words = StepPlan.step(batch).encoded().withUnsafeBytes { Array($0.bindMemory(to: Int32.self)) }
        words[5] = 72
        XCTAssertThrowsError(try StepPlan(decoding: words.withUnsafeBytes { Array($0) })) { error in
            XCTAssertTrue("\(error)".contains("wants-logits word 72"), "\(error)")
        }
        XCTAssertThrowsError(try StepPlan(decoding: StepPlan.shutdown.encoded() + [0, 0, 0, 0])) { error in
            XCTAssertTrue("\(error)".contains("a shutdown of 3 words"), "\(error)")
        }
    }
}

import TandemModel

enum ForwardBatchFixture {
    static let sample = ForwardBatch(
        tokens: [5, 6, 7, 8],
        sequences: [
            ScheduledSequence(tokenCount: 3, computedTokens: 0, blockTable: [4], wantsLogits: false),
            ScheduledSequence(tokenCount: 1, computedTokens: 17, blockTable: [0, 9, 2], wantsLogits: true),
        ])
}
