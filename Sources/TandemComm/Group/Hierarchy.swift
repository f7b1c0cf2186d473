import TandemTensor

/// The two sub-groups a group spanning several hosts runs its collectives through: `local` (the ranks of this
/// host, over shared memory) and `leaders` (the first rank of every host, over TCP).
///
/// Both are carved from the group's own TCP connections (`ProcessGroup(carvedFrom:)`) and share its executor
/// and failure state; their operations run nested inside the parent's (`ProcessGroup.nested`).
final class Hierarchy: Sendable {
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

    init(local: ProcessGroup, leaders: ProcessGroup?, hostRanks: [[Int]], hostOfRank: [Int], rank: Int) {
        self.local = local
        self.leaders = leaders
        self.hostRanks = hostRanks
        self.hostOfRank = hostOfRank
        localRanks = hostRanks[hostOfRank[rank]]
        leaderRanks = hostRanks.map { $0[0] }
    }

    /// Runs a step on this host's ranks.
    func onHost<Result>(
        _ context: OperationContext, dtype: DType, count: Int, _ body: (Collective) throws(CommError) -> Result
    ) throws(CommError) -> Result {
        try local.nested(within: context, ranksInParent: localRanks, dtype: dtype, count: count, body)
    }

    /// Runs a step among the host leaders; nothing on other ranks.
    func amongLeaders(
        _ context: OperationContext, dtype: DType, count: Int, _ body: (Collective) throws(CommError) -> Void
    ) throws(CommError) {
        try leaders?.nested(within: context, ranksInParent: leaderRanks, dtype: dtype, count: count, body)
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
        useHierarchy(Hierarchy(local: local, leaders: leaders, hostRanks: hostRanks, hostOfRank: hostOfRank, rank: rank))
        Log.info("group '\(name)': \(order.count) hosts, \(local.worldSize) rank(s) here on \(local.backend), leaders over TCP")
    }
}

/// Collectives of a group spanning hosts, composed of its hierarchy's intra-host (shared memory) and leader
/// (TCP) operations, so only one rank per host talks across the network.
extension Collective {
    /// Reduce inside each host, all-reduce among the leaders, broadcast inside each host: every rank ends with
    /// the leaders' bits, which are equal on every leader.
    func hierarchicalAllReduce(_ buffer: UnsafeMutableRawPointer, op: ReduceOp, hierarchy: Hierarchy, algorithm: AllReduceAlgorithm) throws(CommError) {
        let combining: ReduceOp = op == .avg ? .sum : op
        let bytes = count * elementBytes
        try hierarchy.onHost(context, dtype: dtype, count: count) { (local) throws(CommError) in
            try local.allReduce(buffer, op: combining, algorithm: algorithm)
        }
        try hierarchy.amongLeaders(context, dtype: dtype, count: count) { (leaders) throws(CommError) in
            try leaders.allReduce(buffer, op: combining, algorithm: algorithm)
        }
        try hierarchy.onHost(context, dtype: dtype, count: count) { (local) throws(CommError) in
            try local.broadcast(buffer, bytes: bytes, root: 0)
        }
        if op == .avg { Reduction.scale(buffer, dtype: dtype, count: count, dividingBy: worldSize) }
    }

    /// All-gather inside each host, all-gather of the hosts' parts among the leaders, broadcast inside each
    /// host; blocks are placed by rank, however ranks are spread over hosts.
    func hierarchicalAllGather(_ input: UnsafeRawPointer, into output: UnsafeMutableRawPointer, blocks: [Range<Int>], hierarchy: Hierarchy) throws(CommError) {
        let total = blocks.last?.upperBound ?? 0
        // Host-major staging: host h's ranks' blocks, consecutively, for h in host order.
        let hostBytes = hierarchy.hostRanks.map { ranks in ranks.reduce(0) { $0 + blocks[$1].count } }
        let hostStarts = ranges(fromSizes: hostBytes)
        let staging = UnsafeMutableRawPointer.allocate(byteCount: max(total, 1), alignment: 64)
        defer { staging.deallocate() }
        let mine = hierarchy.hostOfRank[rank]
        let localBlocks = hierarchy.hostRanks[mine].map { blocks[$0].count }
        try hierarchy.onHost(context, dtype: dtype, count: total / max(elementBytes, 1)) { (local) throws(CommError) in
            try local.allGather(input, into: staging + hostStarts[mine].lowerBound, blocks: ranges(fromSizes: localBlocks))
        }
        try hierarchy.amongLeaders(context, dtype: dtype, count: total / max(elementBytes, 1)) { (leaders) throws(CommError) in
            try leaders.allGather(staging + hostStarts[mine].lowerBound, into: staging, blocks: hostStarts)
        }
        try hierarchy.onHost(context, dtype: dtype, count: total / max(elementBytes, 1)) { (local) throws(CommError) in
            try local.broadcast(staging, bytes: total, root: 0)
        }
        for (host, ranks) in hierarchy.hostRanks.enumerated() {
            var offset = hostStarts[host].lowerBound
            for member in ranks {
                (output + blocks[member].lowerBound).copyMemory(from: staging + offset, byteCount: blocks[member].count)
                offset += blocks[member].count
            }
        }
    }

    /// Reduce-scatter as a hierarchical all-reduce of the whole input, keeping this rank's block (combining
    /// only: the caller finishes `avg`).
    func hierarchicalReduceScatter(
        _ source: UnsafeRawPointer, blocks: [Range<Int>], op: ReduceOp, into output: UnsafeMutableRawPointer, hierarchy: Hierarchy,
        algorithm: AllReduceAlgorithm
    ) throws(CommError) {
        let total = blocks.last?.upperBound ?? 0
        let scratch = UnsafeMutableRawPointer.allocate(byteCount: max(total * elementBytes, 1), alignment: 64)
        defer { scratch.deallocate() }
        scratch.copyMemory(from: source, byteCount: total * elementBytes)
        let whole = Collective(
            transport: transport, shared: shared, hierarchy: hierarchy, rank: rank, worldSize: worldSize, context: context, dtype: dtype,
            tag: tag, count: total)
        try whole.hierarchicalAllReduce(scratch, op: op == .avg ? .sum : op, hierarchy: hierarchy, algorithm: algorithm)
        let mine = blocks[rank]
        output.copyMemory(from: scratch + mine.lowerBound * elementBytes, byteCount: mine.count * elementBytes)
    }

    /// Broadcast inside the root's host, among the leaders from the root's host, then inside every other host.
    func hierarchicalBroadcast(_ buffer: UnsafeMutableRawPointer, bytes: Int, root: Int, hierarchy: Hierarchy) throws(CommError) {
        let rootHost = hierarchy.hostOfRank[root]
        let mine = hierarchy.hostOfRank[rank]
        if mine == rootHost {
            let localRoot = hierarchy.hostRanks[rootHost].firstIndex(of: root)!
            try hierarchy.onHost(context, dtype: dtype, count: count) { (local) throws(CommError) in
                try local.broadcast(buffer, bytes: bytes, root: localRoot)
            }
        }
        try hierarchy.amongLeaders(context, dtype: dtype, count: count) { (leaders) throws(CommError) in
            try leaders.broadcast(buffer, bytes: bytes, root: rootHost)
        }
        if mine != rootHost {
            try hierarchy.onHost(context, dtype: dtype, count: count) { (local) throws(CommError) in
                try local.broadcast(buffer, bytes: bytes, root: 0)
            }
        }
    }
}
