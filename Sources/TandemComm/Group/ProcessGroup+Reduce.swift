import TandemTensor

extension ProcessGroup {
    // MARK: all-reduce

    /// Reduces `tensor` element-wise across all ranks, in place; every rank ends with the same bytes.
    ///
    /// - Parameters:
    ///   - tensor: the same shape and dtype on every rank.
    ///   - op: the reduction; `avg` needs a floating-point dtype.
    public func allReduce(_ tensor: Tensor, op: ReduceOp = .sum) throws(CommError) {
        try perform(try planAllReduce(tensor, into: tensor, op: op))
    }

    /// Reduces `input` across all ranks into `output` (same shape and dtype), leaving `input` untouched.
    public func allReduce(_ input: Tensor, into output: Tensor, op: ReduceOp = .sum) throws(CommError) {
        try perform(try planAllReduce(input, into: output, op: op))
    }

    /// Asynchronous in-place `allReduce`.
    public func allReduceAsync(_ tensor: Tensor, op: ReduceOp = .sum) -> Work {
        enqueue { () throws(CommError) in try planAllReduce(tensor, into: tensor, op: op) }
    }

    /// Asynchronous out-of-place `allReduce`.
    public func allReduceAsync(_ input: Tensor, into output: Tensor, op: ReduceOp = .sum) -> Work {
        enqueue { () throws(CommError) in try planAllReduce(input, into: output, op: op) }
    }

    private func planAllReduce(_ input: Tensor, into output: Tensor, op: ReduceOp) throws(CommError) -> OperationPlan {
        try requireReducible(input.dtype, op, .allReduce)
        try require(
            input.shape == output.shape && input.dtype == output.dtype, .allReduce,
            "output \(output.dtype)\(output.shape) differs from input \(input.dtype)\(input.shape)")
        let worldSize = self.worldSize
        return OperationPlan(operation: .allReduce, dtype: input.dtype, count: input.count) { collective throws(CommError) in
            if output !== input { output.baseAddress.copyMemory(from: input.baseAddress, byteCount: input.byteCount) }
            try collective.allReduce(output.baseAddress, op: op.combining)
            Self.finishAverage(op, output, worldSize: worldSize)
        }
    }

    // MARK: reduce-scatter

    /// Reduces `input` across ranks and leaves rank r with the r-th of `worldSize` equal parts along `dim`.
    ///
    /// - Returns: a tensor shaped like `input` with `dim` divided by the world size.
    public func reduceScatter(_ input: Tensor, dim: Int = 0, op: ReduceOp = .sum) throws(CommError) -> Tensor {
        let axis = try normalizedDimension(dim, of: input, .reduceScatter)
        try require(
            input.shape[axis] % worldSize == 0, .reduceScatter,
            "dim \(axis) of shape \(input.shape) is not divisible by the world size \(worldSize); use reduceScatterV")
        let output = Tensor(zeros: reshaped(input.shape, dim: axis, extent: input.shape[axis] / worldSize), dtype: input.dtype)
        try reduceScatter(input, into: output, dim: axis, op: op)
        return output
    }

    /// Reduce-scatter into a preallocated `output` (input's shape with `dim` divided by the world size).
    public func reduceScatter(_ input: Tensor, into output: Tensor, dim: Int = 0, op: ReduceOp = .sum) throws(CommError) {
        try perform(try planReduceScatter(input, into: output, dim: dim, op: op))
    }

    /// Asynchronous `reduceScatter(_:into:dim:op:)`.
    public func reduceScatterAsync(_ input: Tensor, into output: Tensor, dim: Int = 0, op: ReduceOp = .sum) -> Work {
        enqueue { () throws(CommError) in try planReduceScatter(input, into: output, dim: dim, op: op) }
    }

    /// Reduce-scatter with ragged parts: rank r receives `sizes[r]` entries along `dim`.
    ///
    /// - Parameter sizes: one entry per rank, summing to `input.shape[dim]`; the same on every rank.
    public func reduceScatterV(_ input: Tensor, sizes: [Int], dim: Int = 0, op: ReduceOp = .sum) throws(CommError) -> Tensor {
        let axis = try normalizedDimension(dim, of: input, .reduceScatterV)
        try validateSizes(sizes, .reduceScatterV)
        let output = Tensor(zeros: reshaped(input.shape, dim: axis, extent: sizes[rank]), dtype: input.dtype)
        try perform(try planReduceScatter(input, into: output, dim: axis, op: op, sizes: sizes))
        return output
    }

    /// Asynchronous `reduceScatterV` into a preallocated `output` (`dim` extent = `sizes[rank]`).
    public func reduceScatterVAsync(_ input: Tensor, sizes: [Int], into output: Tensor, dim: Int = 0, op: ReduceOp = .sum) -> Work {
        enqueue { () throws(CommError) in
            try validateSizes(sizes, .reduceScatterV)
            return try planReduceScatter(input, into: output, dim: dim, op: op, sizes: sizes)
        }
    }

    private func planReduceScatter(
        _ input: Tensor, into output: Tensor, dim: Int, op: ReduceOp, sizes given: [Int]? = nil
    ) throws(CommError) -> OperationPlan {
        let kind: OperationKind = given == nil ? .reduceScatter : .reduceScatterV
        let axis = try normalizedDimension(dim, of: input, kind)
        try requireReducible(input.dtype, op, kind)
        let part = output.rank > axis ? output.shape[axis] : 0
        let total = given?.reduce(0, +) ?? part * worldSize
        let mine = given?[rank] ?? part
        try require(
            total == input.shape[axis], kind,
            "the parts along dim \(axis) sum to \(total), but the input \(input.shape) has \(input.shape[axis])")
        try require(
            has(output, dtype: input.dtype, shape: input.shape, dim: axis, extent: mine), kind,
            "output \(output.dtype)\(output.shape) must be \(input.dtype)\(reshaped(input.shape, dim: axis, extent: mine))")
        let layout = DimensionLayout(shape: input.shape, dim: axis)
        let blocks = rankBlocks(sizes: given, uniform: part, unit: layout.inner * layout.outer)
        let worldSize = self.worldSize
        return OperationPlan(operation: kind, dtype: input.dtype, count: input.count) { collective throws(CommError) in
            let elementBytes = input.dtype.byteSize
            var source = input.baseAddress
            var reordered: Tensor?
            if !layout.isContiguousAlongDim {
                let packed = Tensor(zeros: input.shape, dtype: input.dtype)
                BlockReorder.copy(
                    rankMajor: packed.baseAddress, concatenated: input.baseAddress, outer: layout.outer,
                    extents: given ?? Array(repeating: part, count: blocks.count),
                    inner: layout.inner, elementBytes: elementBytes, toRankMajor: true)
                source = packed.baseAddress
                reordered = packed
            }
            defer { withExtendedLifetime(reordered) {} }
            try collective.reduceScatter(source, blocks: blocks, op: op.combining, into: output.baseAddress)
            Self.finishAverage(op, output, worldSize: worldSize)
        }
    }

    /// The one `avg` rule of every backend: the backend reduces with `sum` (`ReduceOp.combining`), and the core
    /// divides the result once here.
    static func finishAverage(_ op: ReduceOp, _ result: Tensor, worldSize: Int) {
        if op == .avg { Reduction.scale(result.baseAddress, dtype: result.dtype, count: result.count, dividingBy: worldSize) }
    }

    private func requireReducible(_ dtype: DType, _ op: ReduceOp, _ operation: OperationKind) throws(CommError) {
        try require(op != .avg || dtype.isFloatingPoint, operation, "avg needs a floating-point dtype, got \(dtype); use sum")
    }
}

extension ReduceOp {
    /// What a backend reduces with: `sum` for `avg` (the core divides afterwards), the op itself otherwise.
    var combining: ReduceOp { self == .avg ? .sum : self }
}
