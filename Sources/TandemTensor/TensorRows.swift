/// Typed, bounds-checked views of an fp32 tensor's rows, so layer code indexes rows instead of doing pointer
/// arithmetic. A tensor of rank ≥ 2 is seen as `[count / width, width]`, `width` its last dimension. The views
/// are valid while the tensor lives (the caller holds it).
extension Tensor {
    /// The elements as fp32, for kernels that take a pointer.
    ///
    /// - Precondition: the dtype is float32.
    public var floats: UnsafeMutablePointer<Float> {
        precondition(dtype == .float32, "a float32 view of a \(dtype) tensor")
        return baseAddress.assumingMemoryBound(to: Float.self)
    }

    /// Elements per row (the last dimension).
    public var rowWidth: Int {
        precondition(rank >= 2, "rows of a tensor of rank \(rank)")
        return shape[rank - 1]
    }

    /// Rows: every dimension but the last, flattened.
    public var rowCount: Int { rowWidth == 0 ? 0 : count / rowWidth }

    /// Row `index`.
    public func row(_ index: Int) -> UnsafeMutableBufferPointer<Float> { row(index, columns: 0..<rowWidth) }

    /// Columns `columns` of row `index`.
    public func row(_ index: Int, columns: Range<Int>) -> UnsafeMutableBufferPointer<Float> {
        let width = rowWidth
        precondition((0..<rowCount).contains(index), "row \(index) of \(rowCount)")
        precondition(columns.lowerBound >= 0 && columns.upperBound <= width, "columns \(columns) of \(width)")
        return UnsafeMutableBufferPointer(start: floats + index * width + columns.lowerBound, count: columns.count)
    }

    /// Rows `range`, contiguous (`range.count × rowWidth` elements), for kernels that walk several rows with the
    /// row width as their stride.
    public func rows(_ range: Range<Int>) -> UnsafeMutableBufferPointer<Float> {
        precondition(range.lowerBound >= 0 && range.upperBound <= rowCount, "rows \(range) of \(rowCount)")
        return UnsafeMutableBufferPointer(start: floats + range.lowerBound * rowWidth, count: range.count * rowWidth)
    }
}

extension UnsafeMutableBufferPointer where Element == Float {
    /// Copies `source`, which must have this view's length.
    public func copy(from source: UnsafeMutableBufferPointer<Float>) {
        precondition(source.count == count, "copying \(source.count) values into \(count)")
        guard let target = baseAddress, let origin = source.baseAddress else { return }
        target.update(from: origin, count: count)
    }
}
