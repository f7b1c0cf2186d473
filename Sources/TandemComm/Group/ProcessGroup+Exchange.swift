import Foundation
import TandemTensor

extension ProcessGroup {
    // MARK: send / recv

    /// Sends `tensor` to `peer`. Messages to one peer arrive in the order sent; the receiver must post a
    /// `recv` with the same tag, size and dtype. A large send completes only once the peer receives it: use
    /// `sendReceive` or `batchSendReceive` for exchanges in which every rank sends first.
    public func send(_ tensor: Tensor, to peer: Int, tag: Int32 = 0) throws(CommError) {
        try perform(try planPointToPoint([.send(tensor, to: peer)], tag: tag))
    }

    /// Receives into `tensor` the next message from `peer`, which must carry `tag` and match its size and dtype.
    public func recv(into tensor: Tensor, from peer: Int, tag: Int32 = 0) throws(CommError) {
        try perform(try planPointToPoint([.receive(tensor, from: peer)], tag: tag))
    }

    /// Asynchronous `send`.
    public func isend(_ tensor: Tensor, to peer: Int, tag: Int32 = 0) -> Work {
        enqueue { () throws(CommError) in try planPointToPoint([.send(tensor, to: peer)], tag: tag) }
    }

    /// Asynchronous `recv`.
    public func irecv(into tensor: Tensor, from peer: Int, tag: Int32 = 0) -> Work {
        enqueue { () throws(CommError) in try planPointToPoint([.receive(tensor, from: peer)], tag: tag) }
    }

    /// Whether a message from `peer` has begun to arrive — any message, a collective's too — or its connection
    /// ended (it left or died), so a `recv` from it would not wait for the peer (MPI's `Iprobe`); false for this
    /// rank itself and in a one-rank group. Consumes nothing, never blocks, and may be called from any thread.
    public func hasIncoming(from peer: Int) -> Bool {
        guard peer != rank, (0..<worldSize).contains(peer) else { return false }
        return dataPlane?.transport.hasIncoming(from: peer) ?? false
    }

    /// Sends `outgoing` to `destination` while receiving `incoming` from `source`, both at once (a ring shift
    /// or a pairwise exchange cannot deadlock).
    public func sendReceive(_ outgoing: Tensor, to destination: Int, into incoming: Tensor, from source: Int, tag: Int32 = 0) throws(CommError) {
        try perform(try planPointToPoint([.send(outgoing, to: destination), .receive(incoming, from: source)], tag: tag))
    }

    /// Runs several sends and receives as one operation, all progressing at once (torch's
    /// `batch_isend_irecv`). At most one send and one receive per peer.
    public func batchSendReceive(_ operations: [PointToPointOperation], tag: Int32 = 0) throws(CommError) {
        try perform(try planPointToPoint(operations, tag: tag))
    }

    /// Asynchronous `batchSendReceive`.
    public func batchSendReceiveAsync(_ operations: [PointToPointOperation], tag: Int32 = 0) -> Work {
        enqueue { () throws(CommError) in try planPointToPoint(operations, tag: tag) }
    }

    private func planPointToPoint(_ operations: [PointToPointOperation], tag: Int32) throws(CommError) -> OperationPlan {
        var sendPeers = Set<Int>()
        var receivePeers = Set<Int>()
        for operation in operations {
            try require(
                (0..<worldSize).contains(operation.peer) && operation.peer != rank, .send,
                "peer \(operation.peer) must be another rank in 0..<\(worldSize) (this is rank \(rank))")
            let isNew = operation.isSend ? sendPeers.insert(operation.peer).inserted : receivePeers.insert(operation.peer).inserted
            try require(isNew, .send, "more than one \(operation.isSend ? "send to" : "receive from") rank \(operation.peer) in one batch")
        }
        let dtype = operations.first?.tensor.dtype ?? .int8
        var plan = OperationPlan(operation: .send, dtype: dtype, count: 0) { [self] collective throws(CommError) in
            var sends: [OutgoingMessage] = []
            var receives: [IncomingMessage] = []
            for operation in operations {
                let tensor = operation.tensor
                let sequence = nextPointToPointSequence(peer: operation.peer, sending: operation.isSend)
                let typed = Collective(
                    backend: collective.backend, rank: rank, worldSize: worldSize, context: collective.context, dtype: tensor.dtype, tag: tag,
                    count: tensor.count)
                if operation.isSend {
                    sends.append(typed.send(to: operation.peer, tensor.baseAddress, bytes: tensor.byteCount, sequence: sequence))
                } else {
                    receives.append(typed.receive(from: operation.peer, into: tensor.baseAddress, bytes: tensor.byteCount, sequence: sequence))
                }
            }
            try collective.transfer(sends, receives)
        }
        plan.tag = tag
        plan.isPointToPoint = true
        return plan
    }

    // MARK: all-to-all

    /// Splits `input` into `worldSize` equal parts along dim 0, sends part p to rank p, and places the part
    /// received from rank p at position p of `output` (same shape and dtype as `input`).
    public func allToAll(_ input: Tensor, into output: Tensor) throws(CommError) {
        try perform(try planAllToAll(input, into: output))
    }

    /// Asynchronous `allToAll`.
    public func allToAllAsync(_ input: Tensor, into output: Tensor) -> Work {
        enqueue { () throws(CommError) in try planAllToAll(input, into: output) }
    }

    private func planAllToAll(_ input: Tensor, into output: Tensor) throws(CommError) -> OperationPlan {
        try require(input.rank >= 1 && input.shape[0] % worldSize == 0, .allToAll,
            "dim 0 of input \(input.shape) must be divisible by the world size \(worldSize); use allToAllV")
        try require(input.shape == output.shape && input.dtype == output.dtype, .allToAll,
            "output \(output.dtype)\(output.shape) must match input \(input.dtype)\(input.shape)")
        let blocks = partition(input.byteCount, into: worldSize)
        return OperationPlan(operation: .allToAll, dtype: input.dtype, count: input.count) { collective throws(CommError) in
            try collective.allToAll(input.baseAddress, sendBlocks: blocks, into: output.baseAddress, receiveBlocks: blocks)
        }
    }

    /// All-to-all with per-peer sizes along dim 0: `sendSizes[p]` rows of `input` go to rank p, and
    /// `receiveSizes[p]` rows from rank p land in `output`, in rank order. Rows (the other dimensions) must
    /// match across ranks; rank p's `sendSizes[q]` must equal rank q's `receiveSizes[p]`.
    public func allToAllV(_ input: Tensor, sendSizes: [Int], into output: Tensor, receiveSizes: [Int]) throws(CommError) {
        try perform(try planAllToAllV(input, sendSizes: sendSizes, into: output, receiveSizes: receiveSizes))
    }

    /// Asynchronous `allToAllV`.
    public func allToAllVAsync(_ input: Tensor, sendSizes: [Int], into output: Tensor, receiveSizes: [Int]) -> Work {
        enqueue { () throws(CommError) in try planAllToAllV(input, sendSizes: sendSizes, into: output, receiveSizes: receiveSizes) }
    }

    private func planAllToAllV(_ input: Tensor, sendSizes: [Int], into output: Tensor, receiveSizes: [Int]) throws(CommError) -> OperationPlan {
        try validateSizes(sendSizes, .allToAllV)
        try validateSizes(receiveSizes, .allToAllV)
        try require(input.rank >= 1 && output.rank >= 1, .allToAllV, "input and output need rank ≥ 1")
        try require(input.shape.dropFirst() == output.shape.dropFirst() && input.dtype == output.dtype, .allToAllV,
            "rows differ: input \(input.dtype)\(input.shape), output \(output.dtype)\(output.shape)")
        try require(sendSizes.reduce(0, +) == input.shape[0], .allToAllV,
            "sendSizes sum to \(sendSizes.reduce(0, +)) but input has \(input.shape[0]) rows")
        try require(receiveSizes.reduce(0, +) == output.shape[0], .allToAllV,
            "receiveSizes sum to \(receiveSizes.reduce(0, +)) but output has \(output.shape[0]) rows")
        let rowBytes = input.shape.dropFirst().reduce(1, *) * input.dtype.byteSize
        let sendBlocks = ranges(fromSizes: sendSizes.map { $0 * rowBytes })
        let receiveBlocks = ranges(fromSizes: receiveSizes.map { $0 * rowBytes })
        return OperationPlan(operation: .allToAllV, dtype: input.dtype, count: 0) { collective throws(CommError) in
            try collective.allToAll(input.baseAddress, sendBlocks: sendBlocks, into: output.baseAddress, receiveBlocks: receiveBlocks)
        }
    }

    // MARK: barrier

    /// Returns once every rank has entered the barrier.
    public func barrier() throws(CommError) {
        try perform(planBarrier())
    }

    /// Asynchronous `barrier`.
    public func barrierAsync() -> Work {
        enqueue { () throws(CommError) in planBarrier() }
    }

    private func planBarrier() -> OperationPlan {
        OperationPlan(operation: .barrier, dtype: .int8, count: 0) { collective throws(CommError) in try collective.barrier() }
    }

    // MARK: objects

    /// Sends a `Codable` value from `source` to every rank (JSON-encoded). Other ranks pass nil.
    ///
    /// - Returns: the source's value on every rank.
    public func broadcastObject<Value: Codable>(_ value: Value?, source: Int) throws(CommError) -> Value {
        try requireRoot(source, "source", .broadcast)
        let length = Tensor(zeros: [1], dtype: .int64)
        var encoded: [UInt8] = []
        if rank == source {
            guard let value else { throw invalid(.broadcast, "the source rank must pass a value to broadcastObject") }
            encoded = try encode(value)
            length.setElement(0, Double(encoded.count))
        }
        try broadcast(length, source: source)
        let payload = Tensor(zeros: [Int(length.element(0))], dtype: .int8)
        if rank == source { encoded.withUnsafeBytes { payload.baseAddress.copyMemory(from: $0.baseAddress!, byteCount: $0.count) } }
        try broadcast(payload, source: source)
        return try decode(Value.self, from: payload, offset: 0, count: payload.count)
    }

    /// Gathers a `Codable` value from every rank (JSON-encoded), in rank order, on every rank.
    public func allGatherObject<Value: Codable>(_ value: Value) throws(CommError) -> [Value] {
        let encoded = try encode(value)
        let lengths = try allGather(Tensor(converting: [Double(encoded.count)], dtype: .int64))
        let sizes = lengths.toDoubles().map { Int($0) }
        let mine = Tensor(zeros: [encoded.count], dtype: .int8)
        encoded.withUnsafeBytes { if $0.count > 0 { mine.baseAddress.copyMemory(from: $0.baseAddress!, byteCount: $0.count) } }
        let all = try allGatherV(mine, sizes: sizes)
        var results: [Value] = []
        var offset = 0
        for size in sizes {
            results.append(try decode(Value.self, from: all, offset: offset, count: size))
            offset += size
        }
        return results
    }

    private func encode<Value: Encodable>(_ value: Value) throws(CommError) -> [UInt8] {
        do {
            return Array(try JSONEncoder().encode(value))
        } catch {
            throw invalid(.broadcast, "cannot encode \(Value.self): \(error)")
        }
    }

    private func decode<Value: Decodable>(_ type: Value.Type, from tensor: Tensor, offset: Int, count: Int) throws(CommError) -> Value {
        let data = Data(bytes: tensor.baseAddress + offset, count: count)
        do {
            return try JSONDecoder().decode(Value.self, from: data)
        } catch {
            throw invalid(.broadcast, "cannot decode \(Value.self) from a peer's object: \(error)")
        }
    }
}

/// One send or receive of a `batchSendReceive`.
public struct PointToPointOperation: Sendable {
    let tensor: Tensor
    let peer: Int
    let isSend: Bool

    /// Sends `tensor` to `peer`.
    public static func send(_ tensor: Tensor, to peer: Int) -> PointToPointOperation {
        PointToPointOperation(tensor: tensor, peer: peer, isSend: true)
    }

    /// Receives into `tensor` from `peer`.
    public static func receive(_ tensor: Tensor, from peer: Int) -> PointToPointOperation {
        PointToPointOperation(tensor: tensor, peer: peer, isSend: false)
    }
}
