import TandemTensor

/// The message-passing backend: every collective is one of `Algorithms/`'s algorithms over a `TCPTransport`,
/// chosen by message size and the group's `AllReduceAlgorithm` setting.
final class TCPBackend: CommBackend {
    let kind = GroupBackend.tcp
    let connections: TCPTransport
    /// The group's all-reduce setting, which also steers reduce-scatter.
    let allReduceAlgorithm: AllReduceAlgorithm

    var transport: any MessageTransport { connections }

    init(connections: TCPTransport, allReduceAlgorithm: AllReduceAlgorithm) {
        self.connections = connections
        self.allReduceAlgorithm = allReduceAlgorithm
    }

    func allReduce(_ buffer: UnsafeMutableRawPointer, op: ReduceOp, _ step: Collective) throws(CommError) {
        try step.messageAllReduce(buffer, op: op, algorithm: allReduceAlgorithm.resolved(bytes: step.count * step.elementBytes, worldSize: step.worldSize))
    }

    func reduceScatter(
        _ source: UnsafeMutableRawPointer, blocks: [Range<Int>], op: ReduceOp, into output: UnsafeMutableRawPointer, _ step: Collective
    ) throws(CommError) {
        let bytes = (blocks.last?.upperBound ?? 0) * step.elementBytes
        try step.messageReduceScatter(
            source, blocks: blocks, op: op, into: output,
            algorithm: ReduceScatterAlgorithm.choose(bytes: bytes, worldSize: step.worldSize, allReduce: allReduceAlgorithm))
    }

    func allGather(_ input: UnsafeRawPointer, into output: UnsafeMutableRawPointer, blocks: [Range<Int>], _ step: Collective) throws(CommError) {
        try step.messageAllGather(
            input, into: output, blocks: blocks, algorithm: AllGatherAlgorithm.choose(bytes: blocks.last?.upperBound ?? 0, worldSize: step.worldSize))
    }

    func broadcast(_ buffer: UnsafeMutableRawPointer, bytes: Int, root: Int, _ step: Collective) throws(CommError) {
        try step.messageBroadcast(buffer, bytes: bytes, root: root, algorithm: BroadcastAlgorithm.choose(bytes: bytes))
    }

    func algorithmName(_ operation: OperationKind, bytes: Int, worldSize: Int) -> String {
        Self.algorithmName(operation, bytes: bytes, worldSize: worldSize, allReduce: allReduceAlgorithm)
    }

    /// The message-passing algorithm names (also what a one-rank group reports).
    static func algorithmName(_ operation: OperationKind, bytes: Int, worldSize: Int, allReduce: AllReduceAlgorithm) -> String {
        switch operation {
        case .allReduce: allReduce.resolved(bytes: bytes, worldSize: worldSize).rawValue
        case .reduceScatter, .reduceScatterV: ReduceScatterAlgorithm.choose(bytes: bytes, worldSize: worldSize, allReduce: allReduce).rawValue
        case .allGather, .allGatherV: AllGatherAlgorithm.choose(bytes: bytes, worldSize: worldSize).rawValue
        case .broadcast: BroadcastAlgorithm.choose(bytes: bytes).rawValue
        case .gather, .scatter, .send, .allToAll, .allToAllV, .barrier: "direct"
        }
    }
}
