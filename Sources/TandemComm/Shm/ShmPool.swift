import Synchronization

/// The shared-memory segments of a root group (one per rank, mapped by every rank), cut into equal regions:
/// region 0 is the root group's, and each sub-group split from it (`ProcessGroup.split`) takes a region free on
/// all its members — no new segment, name or `mmap`, only its owner's `posix_fallocate` of the region.
///
/// A sub-group's shutdown hands its region back; the next taker zeroes the region's control words before its
/// members confirm the claim, so the new group starts from clean stamps and counters. (As with torch's
/// `destroy_process_group`, every member shuts a group down after its last operation on it.)
final class ShmPool: Sendable {
    /// Every root rank's segment, by root rank.
    let segments: [SharedSegment]
    /// This process's root rank (whose segment it created and may reserve in).
    let rootRank: Int
    /// Bytes per region (the root layout's size, rounded up to a page).
    let regionBytes: Int
    /// Regions per segment, at most 64.
    let regionCount: Int
    /// Bit i set: region i is free on this rank.
    private let free: Mutex<UInt64>

    /// Regions per segment (the root group's and up to 31 sub-groups' at once); unused ones cost address space only.
    static let defaultRegionCount = 32

    init(segments: [SharedSegment], rootRank: Int, regionBytes: Int, regionCount: Int) {
        precondition(regionCount >= 1 && regionCount <= 64)
        self.segments = segments
        self.rootRank = rootRank
        self.regionBytes = regionBytes
        self.regionCount = regionCount
        let all: UInt64 = regionCount == 64 ? ~0 : (1 << UInt64(regionCount)) - 1
        free = Mutex(all & ~1)
    }

    /// The region size for a root layout.
    static func regionBytes(for layout: ShmLayout) -> Int {
        let page = 4096
        return (layout.byteCount + page - 1) / page * page
    }

    /// The regions free on this rank, as a bit set.
    var freeRegions: UInt64 { free.withLock { $0 } }

    /// Takes `region` (which the new group's members agreed is free on all of them) for a sub-group whose
    /// control area is `controlBytes`: reserves its pages in this rank's segment and zeroes its control words.
    func claim(_ region: Int, controlBytes: Int) throws(SharedSegmentError) {
        try segments[rootRank].reserve(offset: region * regionBytes, bytes: regionBytes)
        base(of: rootRank, region: region).initializeMemory(as: UInt8.self, repeating: 0, count: controlBytes)
        free.withLock { $0 &= ~(1 << UInt64(region)) }
    }

    /// Hands `region` back once its group is shut down on this rank.
    func release(_ region: Int) {
        free.withLock { $0 |= 1 << UInt64(region) }
    }

    /// The start of `region` in root rank `owner`'s segment.
    func base(of owner: Int, region: Int) -> UnsafeMutableRawPointer {
        segments[owner].base + region * regionBytes
    }
}
