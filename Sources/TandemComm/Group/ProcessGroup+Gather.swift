import TandemTensor

extension ProcessGroup {
    // MARK: all-gather

    /// Concatenates every rank's `input` along `dim`, in rank order, on every rank.
    ///
    /// - Returns: a tensor shaped like `input` with `dim` multiplied by the world size.
    public func allGather(_ input: Tensor, dim: Int = 0) throws(CommError) -> Tensor {
        let axis = try normalizedDimension(dim, of: input, .allGather)
        let output = Tensor(zeros: reshaped(input.shape, dim: axis, extent: input.shape[axis] * worldSize), dtype: input.dtype)
        try perform(try planAllGather(input, into: output, dim: axis, sizes: nil))
        return output
    }

    /// All-gather into a preallocated `output` (input's shape with `dim` multiplied by the world size).
    public func allGather(_ input: Tensor, into output: Tensor, dim: Int = 0) throws(CommError) {
        try perform(try planAllGather(input, into: output, dim: dim, sizes: nil))
    }

    /// Asynchronous `allGather(_:into:dim:)`.
    public func allGatherAsync(_ input: Tensor, into output: Tensor, dim: Int = 0) -> Work {
        enqueue { () throws(CommError) in try planAllGather(input, into: output, dim: dim, sizes: nil) }
    }

    /// All-gather of ragged parts: rank r contributes `sizes[r]` entries along `dim`.
    ///
    /// - Parameter sizes: one entry per rank (the same on every rank); this rank's input must have
    ///   `sizes[rank]` entries along `dim` and match the others in every other dimension.
    public func allGatherV(_ input: Tensor, sizes: [Int], dim: Int = 0) throws(CommError) -> Tensor {
        let axis = try normalizedDimension(dim, of: input, .allGatherV)
        try validateSizes(sizes, .allGatherV)
        let output = Tensor(zeros: reshaped(input.shape, dim: axis, extent: sizes.reduce(0, +)), dtype: input.dtype)
        try perform(try planAllGather(input, into: output, dim: axis, sizes: sizes))
        return output
    }

    /// Asynchronous `allGatherV` into a preallocated `output` (`dim` extent = the sum of `sizes`).
    public func allGatherVAsync(_ input: Tensor, sizes: [Int], into output: Tensor, dim: Int = 0) -> Work {
        enqueue { () throws(CommError) in
            try validateSizes(sizes, .allGatherV)
            return try planAllGather(input, into: output, dim: dim, sizes: sizes)
        }
    }

    private func planAllGather(_ input: Tensor, into output: Tensor, dim: Int, sizes given: [Int]?) throws(CommError) -> OperationPlan {
        let kind: OperationKind = given == nil ? .allGather : .allGatherV
        let axis = try normalizedDimension(dim, of: input, kind)
        let own = input.shape[axis]
        if let given {
            try require(
                own == given[rank], kind, "this rank's input has \(own) entries along dim \(axis), but sizes[\(rank)] is \(given[rank])")
        }
        let total = given?.reduce(0, +) ?? own * worldSize
        try require(
            has(output, dtype: input.dtype, shape: input.shape, dim: axis, extent: total), kind,
            "output \(output.dtype)\(output.shape) must be \(input.dtype)\(reshaped(input.shape, dim: axis, extent: total))")
        let layout = DimensionLayout(shape: input.shape, dim: axis)
        let elementBytes = input.dtype.byteSize
        let blocks = rankBlocks(sizes: given, uniform: own, unit: layout.inner * layout.outer * elementBytes)
        return OperationPlan(operation: kind, dtype: input.dtype, count: output.count) { collective throws(CommError) in
            let target = layout.isContiguousAlongDim ? output : Tensor(zeros: output.shape, dtype: output.dtype)
            try collective.allGather(input.baseAddress, into: target.baseAddress, blocks: blocks)
            if target !== output {
                BlockReorder.copy(
                    rankMajor: target.baseAddress, concatenated: output.baseAddress, outer: layout.outer,
                    extents: given ?? Array(repeating: own, count: blocks.count),
                    inner: layout.inner, elementBytes: elementBytes, toRankMajor: false)
            }
        }
    }

    // MARK: gather / scatter

    /// Collects every rank's `input` (same shape everywhere) at `destination`, concatenated along dim 0.
    ///
    /// - Returns: at `destination`, a tensor of shape `[worldSize × input.shape[0], …]` (`[worldSize]` for
    ///   scalars); nil on other ranks.
    public func gather(_ input: Tensor, destination: Int) throws(CommError) -> Tensor? {
        let output = rank == destination ? Tensor(zeros: gatheredShape(input.shape), dtype: input.dtype) : nil
        try perform(try planGather(input, into: output, destination: destination))
        return output
    }

    /// Asynchronous `gather` into `output` (needed at `destination` only; see `gather(_:destination:)` for its shape).
    public func gatherAsync(_ input: Tensor, into output: Tensor?, destination: Int) -> Work {
        enqueue { () throws(CommError) in try planGather(input, into: output, destination: destination) }
    }

    private func gatheredShape(_ shape: [Int]) -> [Int] {
        shape.isEmpty ? [worldSize] : reshaped(shape, dim: 0, extent: shape[0] * worldSize)
    }

    private func planGather(_ input: Tensor, into output: Tensor?, destination: Int) throws(CommError) -> OperationPlan {
        try requireRoot(destination, "destination", .gather)
        if rank == destination {
            guard let output else { throw invalid(.gather, "the destination rank must pass an output tensor") }
            try require(
                output.dtype == input.dtype && output.shape == gatheredShape(input.shape), .gather,
                "output \(output.dtype)\(output.shape) must be \(input.dtype)\(gatheredShape(input.shape))")
        }
        return OperationPlan(operation: .gather, dtype: input.dtype, count: input.count) { collective throws(CommError) in
            try collective.gather(input.baseAddress, blockBytes: input.byteCount, into: output?.baseAddress, root: destination)
        }
    }

    /// Splits `input` (at `source`, shape `[worldSize × output.shape[0], …]`) along dim 0 and gives rank r the
    /// r-th part in `output`. Other ranks pass nil for `input`.
    public func scatter(_ input: Tensor?, into output: Tensor, source: Int) throws(CommError) {
        try perform(try planScatter(input, into: output, source: source))
    }

    /// Asynchronous `scatter`.
    public func scatterAsync(_ input: Tensor?, into output: Tensor, source: Int) -> Work {
        enqueue { () throws(CommError) in try planScatter(input, into: output, source: source) }
    }

    private func planScatter(_ input: Tensor?, into output: Tensor, source: Int) throws(CommError) -> OperationPlan {
        try requireRoot(source, "source", .scatter)
        if rank == source {
            guard let input else { throw invalid(.scatter, "the source rank must pass an input tensor") }
            try require(
                input.dtype == output.dtype && input.shape == gatheredShape(output.shape), .scatter,
                "input \(input.dtype)\(input.shape) must be \(output.dtype)\(gatheredShape(output.shape)) to scatter into \(output.shape)")
        }
        return OperationPlan(operation: .scatter, dtype: output.dtype, count: output.count) { collective throws(CommError) in
            try collective.scatter(input?.baseAddress, blockBytes: output.byteCount, into: output.baseAddress, root: source)
        }
    }

    // MARK: broadcast

    /// Copies `tensor` from `source` to every rank, in place.
    public func broadcast(_ tensor: Tensor, source: Int) throws(CommError) {
        try perform(try planBroadcast(tensor, source: source))
    }

    /// Asynchronous `broadcast`.
    public func broadcastAsync(_ tensor: Tensor, source: Int) -> Work {
        enqueue { () throws(CommError) in try planBroadcast(tensor, source: source) }
    }

    private func planBroadcast(_ tensor: Tensor, source: Int) throws(CommError) -> OperationPlan {
        try requireRoot(source, "source", .broadcast)
        return OperationPlan(operation: .broadcast, dtype: tensor.dtype, count: tensor.count) { collective throws(CommError) in
            try collective.broadcast(tensor.baseAddress, bytes: tensor.byteCount, root: source)
        }
    }
}
