import TandemTensor

/// The one-host backend: collectives run as exchange rounds over the group's shared memory
/// (`Algorithms/SharedMemory.swift`), point-to-point and all-to-all through its mailboxes (`ShmTransport`).
final class SharedMemoryBackend: CommBackend {
    let kind = GroupBackend.sharedMemory
    let memory: ShmMemory
    let transport: any MessageTransport
    /// The group's all-reduce setting (`one_shot`/`two_shot` force one; any other chooses by size).
    let allReduceAlgorithm: AllReduceAlgorithm

    init(memory: ShmMemory, allReduceAlgorithm: AllReduceAlgorithm) {
        self.memory = memory
        transport = ShmTransport(memory: memory)
        self.allReduceAlgorithm = allReduceAlgorithm
    }

    func allReduce(_ buffer: UnsafeMutableRawPointer, op: ReduceOp, _ step: Collective) throws(CommError) {
        try step.sharedAllReduce(
            buffer, op: op, memory: memory, algorithm: allReduceAlgorithm.resolvedShared(bytes: step.count * step.elementBytes, worldSize: step.worldSize))
    }

    func reduceScatter(
        _ source: UnsafeMutableRawPointer, blocks: [Range<Int>], op: ReduceOp, into output: UnsafeMutableRawPointer, _ step: Collective
    ) throws(CommError) {
        try step.sharedReduceScatter(source, blocks: blocks, op: op, into: output, memory: memory)
    }

    func allGather(_ input: UnsafeRawPointer, into output: UnsafeMutableRawPointer, blocks: [Range<Int>], _ step: Collective) throws(CommError) {
        try step.sharedAllGather(input, into: output, blocks: blocks, memory: memory)
    }

    func broadcast(_ buffer: UnsafeMutableRawPointer, bytes: Int, root: Int, _ step: Collective) throws(CommError) {
        try step.sharedBroadcast(buffer, bytes: bytes, root: root, memory: memory)
    }

    func gather(_ input: UnsafeRawPointer, blockBytes: Int, into output: UnsafeMutableRawPointer?, root: Int, _ step: Collective) throws(CommError) {
        try step.sharedGather(input, blockBytes: blockBytes, into: output, root: root, memory: memory)
    }

    func scatter(_ input: UnsafeRawPointer?, blockBytes: Int, into output: UnsafeMutableRawPointer, root: Int, _ step: Collective) throws(CommError) {
        try step.sharedScatter(input, blockBytes: blockBytes, into: output, root: root, memory: memory)
    }

    func algorithmName(_ operation: OperationKind, bytes: Int, worldSize: Int) -> String {
        switch operation {
        case .allReduce: allReduceAlgorithm.resolvedShared(bytes: bytes, worldSize: worldSize).rawValue
        case .send, .allToAll, .allToAllV: "mailbox"
        default: "exchange"
        }
    }
}
