import TandemTensor

/// A tensor seen as `[outer, extent, inner]` around one dimension: how concatenation along `dim` maps to
/// contiguous blocks.
struct DimensionLayout {
    let outer: Int
    let extent: Int
    let inner: Int

    init(shape: [Int], dim: Int) {
        outer = shape[..<dim].reduce(1, *)
        extent = shape[dim]
        inner = shape[(dim + 1)...].reduce(1, *)
    }

    /// Whether blocks along `dim` are contiguous in memory (nothing varies before `dim`).
    var isContiguousAlongDim: Bool { outer == 1 }
}

/// Moves data between "concatenated along dim" order and rank-major order, for collectives along a
/// dimension other than the outermost.
enum BlockReorder {
    /// Copies rank blocks laid out one after another in `rankMajor` (block r is `[outer, extents[r], inner]`)
    /// into `concatenated` (`[outer, Σ extents, inner]`); `toRankMajor` copies the other way.
    static func copy(
        rankMajor: UnsafeMutableRawPointer, concatenated: UnsafeMutableRawPointer, outer: Int, extents: [Int],
        inner: Int, elementBytes: Int, toRankMajor: Bool
    ) {
        let total = extents.reduce(0, +)
        var blockStart = 0
        var extentOffset = 0
        for extent in extents {
            let rowBytes = extent * inner * elementBytes
            for row in 0..<outer {
                let packed = rankMajor + blockStart + row * rowBytes
                let spread = concatenated + ((row * total + extentOffset) * inner) * elementBytes
                if toRankMajor {
                    packed.copyMemory(from: spread, byteCount: rowBytes)
                } else {
                    spread.copyMemory(from: packed, byteCount: rowBytes)
                }
            }
            blockStart += rowBytes * outer
            extentOffset += extent
        }
    }
}

extension ProcessGroup {
    /// Checks `dim` against `tensor` and returns it normalized (negative counts from the end).
    func normalizedDimension(_ dim: Int, of tensor: Tensor, _ operation: OperationKind) throws(CommError) -> Int {
        try require(tensor.rank >= 1, operation, "a \(operation) along a dimension needs a tensor of rank ≥ 1, got a scalar")
        let normalized = dim < 0 ? dim + tensor.rank : dim
        try require((0..<tensor.rank).contains(normalized), operation, "dim \(dim) is out of range for shape \(tensor.shape)")
        return normalized
    }

    /// Checks that the root of a rooted collective (`role`: "source" or "destination") is a rank of this group.
    func requireRoot(_ root: Int, _ role: String, _ operation: OperationKind) throws(CommError) {
        try require((0..<worldSize).contains(root), operation, "\(role) \(root) is outside 0..<\(worldSize)")
    }

    /// Checks that `sizes` has one non-negative entry per rank.
    func validateSizes(_ sizes: [Int], _ operation: OperationKind) throws(CommError) {
        try require(sizes.count == worldSize, operation, "sizes has \(sizes.count) entries, need one per rank (\(worldSize))")
        try require(sizes.allSatisfy { $0 >= 0 }, operation, "sizes must be non-negative, got \(sizes)")
    }

    /// Whether `tensor` has `dtype` and `shape` with `dim` replaced by `extent`; checked on every call, so it
    /// builds no array.
    func has(_ tensor: Tensor, dtype: DType, shape: [Int], dim: Int, extent: Int) -> Bool {
        tensor.dtype == dtype && tensor.shape.count == shape.count
            && tensor.shape.indices.allSatisfy { tensor.shape[$0] == ($0 == dim ? extent : shape[$0]) }
    }

    /// One contiguous block per rank, `sizes[r] × unit` long, or `uniform × unit` each when `sizes` is nil.
    func rankBlocks(sizes: [Int]?, uniform: Int, unit: Int) -> [Range<Int>] {
        sizes.map { ranges(fromSizes: $0.map { $0 * unit }) } ?? (0..<worldSize).map { $0 * uniform * unit..<($0 + 1) * uniform * unit }
    }

    /// `shape` with `dim` replaced by `extent`.
    func reshaped(_ shape: [Int], dim: Int, extent: Int) -> [Int] {
        var result = shape
        result[dim] = extent
        return result
    }
}
