import TandemTensor

/// The backend of a group spanning several hosts: its collectives are composed of two sub-groups' operations,
/// `local` (the ranks of this host, over shared memory) and `leaders` (the first rank of every host, over TCP),
/// so only one rank per host talks across the network. Point-to-point, gather, scatter and all-to-all go
/// straight over the group's own TCP connections (`transport`).
///
/// Both sub-groups are carved from the group's TCP connections (`ProcessGroup(carvedFrom:)`) and share its
/// executor and failure state; their operations run nested inside the parent's (`ProcessGroup.nested`).
final class HierarchicalBackend: CommBackend {
    let kind = GroupBackend.hierarchical
    /// The group's own TCP connections.
    let transport: any MessageTransport
    /// This host's ranks (shared memory when the host has several).
    let local: ProcessGroup
    /// One rank per host, in host order; nil on ranks that are not their host's leader.
    let leaders: ProcessGroup?
    /// The ranks of each host, in rank order; hosts ordered by their first rank.
    let hostRanks: [[Int]]
    /// The host index of every rank.
    let hostOfRank: [Int]
    /// The parent's ranks of `local`'s and of `leaders`' members.
    let localRanks: [Int]
    let leaderRanks: [Int]

    init(transport: any MessageTransport, local: ProcessGroup, leaders: ProcessGroup?, hostRanks: [[Int]], hostOfRank: [Int], rank: Int) {
        self.transport = transport
        self.local = local
        self.leaders = leaders
        self.hostRanks = hostRanks
        self.hostOfRank = hostOfRank
        localRanks = hostRanks[hostOfRank[rank]]
        leaderRanks = hostRanks.map { $0[0] }
    }

    /// Runs a part of `step` on this host's ranks.
    func onHost<Result>(_ step: Collective, _ body: (Collective) throws(CommError) -> Result) throws(CommError) -> Result {
        try local.nested(within: step.context, ranksInParent: localRanks, dtype: step.dtype, count: step.count, body)
    }

    /// Runs a part of `step` among the host leaders; nothing on other ranks.
    func amongLeaders(_ step: Collective, _ body: (Collective) throws(CommError) -> Void) throws(CommError) {
        try leaders?.nested(within: step.context, ranksInParent: leaderRanks, dtype: step.dtype, count: step.count, body)
    }
}

extension ProcessGroup {
    /// Builds the hierarchy from every rank's host identity: a local group per host (moved onto shared memory
    /// when it has several ranks) and a leaders group of each host's first rank.
    func setUpHierarchy(hosts: [String], token: String, scope: String) throws(CommError) {
        var order: [String] = []
        for host in hosts where !order.contains(host) { order.append(host) }
        let hostOfRank = hosts.map { order.firstIndex(of: $0)! }
        let hostRanks = order.indices.map { index in (0..<worldSize).filter { hostOfRank[$0] == index } }
        let mine = hostOfRank[rank]
        let localName = "\(name)/host\(mine)"
        let local = try ProcessGroup(
            carvedFrom: self, ranksInParent: hostRanks[mine], name: localName, listHash: 0, keepsParent: false)
        if local.worldSize > 1,
            let memory = try local.setUpSharedMemory(
                base: ShmNaming.base(token: token, scope: "\(scope)/host\(mine)", worldSize: local.worldSize))
        {
            local.useSharedMemory(memory)
        }
        let leaderRanks = hostRanks.map { $0[0] }
        let leaders =
            leaderRanks.contains(rank)
            ? try ProcessGroup(carvedFrom: self, ranksInParent: leaderRanks, name: "\(name)/leaders", listHash: 0, keepsParent: false)
            : nil
        guard let connections else { preconditionFailure("a hierarchy is built over the group's TCP connections") }
        use(HierarchicalBackend(transport: connections, local: local, leaders: leaders, hostRanks: hostRanks, hostOfRank: hostOfRank, rank: rank))
        Log.info("group '\(name)': \(order.count) hosts, \(local.worldSize) rank(s) here on \(local.backend), leaders over TCP")
    }
}

extension HierarchicalBackend {
    /// Reduce inside each host, all-reduce among the leaders, broadcast inside each host: every rank ends with
    /// the leaders' bits, which are equal on every leader.
    func allReduce(_ buffer: UnsafeMutableRawPointer, op: ReduceOp, _ step: Collective) throws(CommError) {
        let bytes = step.count * step.elementBytes
        try onHost(step) { (local) throws(CommError) in try local.allReduce(buffer, op: op) }
        try amongLeaders(step) { (leaders) throws(CommError) in try leaders.allReduce(buffer, op: op) }
        try onHost(step) { (local) throws(CommError) in try local.broadcast(buffer, bytes: bytes, root: 0) }
    }

    /// All-gather inside each host, all-gather of the hosts' parts among the leaders, broadcast inside each
    /// host; blocks are placed by rank, however ranks are spread over hosts.
    func allGather(_ input: UnsafeRawPointer, into output: UnsafeMutableRawPointer, blocks: [Range<Int>], _ step: Collective) throws(CommError) {
        let total = blocks.last?.upperBound ?? 0
        // Host-major staging: host h's ranks' blocks, consecutively, for h in host order.
        let hostBytes = hostRanks.map { ranks in ranks.reduce(0) { $0 + blocks[$1].count } }
        let hostStarts = ranges(fromSizes: hostBytes)
        let staging = UnsafeMutableRawPointer.allocate(byteCount: max(total, 1), alignment: 64)
        defer { staging.deallocate() }
        let mine = hostOfRank[step.rank]
        let localBlocks = hostRanks[mine].map { blocks[$0].count }
        var whole = step
        whole.count = total / max(step.elementBytes, 1)
        try onHost(whole) { (local) throws(CommError) in
            try local.allGather(input, into: staging + hostStarts[mine].lowerBound, blocks: ranges(fromSizes: localBlocks))
        }
        try amongLeaders(whole) { (leaders) throws(CommError) in
            try leaders.allGather(staging + hostStarts[mine].lowerBound, into: staging, blocks: hostStarts)
        }
        try onHost(whole) { (local) throws(CommError) in try local.broadcast(staging, bytes: total, root: 0) }
        for (host, ranks) in hostRanks.enumerated() {
            var offset = hostStarts[host].lowerBound
            for member in ranks {
                (output + blocks[member].lowerBound).copyMemory(from: staging + offset, byteCount: blocks[member].count)
                offset += blocks[member].count
            }
        }
    }

    /// Reduce-scatter as a hierarchical all-reduce of the whole input, keeping this rank's block.
    func reduceScatter(
        _ source: UnsafeMutableRawPointer, blocks: [Range<Int>], op: ReduceOp, into output: UnsafeMutableRawPointer, _ step: Collective
    ) throws(CommError) {
        let total = blocks.last?.upperBound ?? 0
        let elementBytes = step.elementBytes
        let scratch = UnsafeMutableRawPointer.allocate(byteCount: max(total * elementBytes, 1), alignment: 64)
        defer { scratch.deallocate() }
        scratch.copyMemory(from: source, byteCount: total * elementBytes)
        var whole = step
        whole.count = total
        try allReduce(scratch, op: op, whole)
        let mine = blocks[step.rank]
        output.copyMemory(from: scratch + mine.lowerBound * elementBytes, byteCount: mine.count * elementBytes)
    }

    /// Broadcast inside the root's host, among the leaders from the root's host, then inside every other host.
    func broadcast(_ buffer: UnsafeMutableRawPointer, bytes: Int, root: Int, _ step: Collective) throws(CommError) {
        let rootHost = hostOfRank[root]
        let mine = hostOfRank[step.rank]
        if mine == rootHost {
            let localRoot = hostRanks[rootHost].firstIndex(of: root)!
            try onHost(step) { (local) throws(CommError) in try local.broadcast(buffer, bytes: bytes, root: localRoot) }
        }
        try amongLeaders(step) { (leaders) throws(CommError) in try leaders.broadcast(buffer, bytes: bytes, root: rootHost) }
        if mine != rootHost {
            try onHost(step) { (local) throws(CommError) in try local.broadcast(buffer, bytes: bytes, root: 0) }
        }
    }

    func algorithmName(_ operation: OperationKind, bytes: Int, worldSize: Int) -> String {
        switch operation {
        case .allReduce, .allGather, .allGatherV, .reduceScatter, .reduceScatterV, .broadcast, .barrier: "hierarchical"
        default: "direct"
        }
    }
}
