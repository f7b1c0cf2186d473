/// How `ProcessGroup.split` creates sub-groups.
public enum SubgroupPath: String, Sendable, CaseIterable {
    /// Carved from the parent's existing connections and shared-memory mappings: no store traffic, no new
    /// connection or segment.
    case split
    /// A fresh group per sub-group: its own rendezvous through the store, connections and segments.
    case newGroup = "new_group"

    /// `TANDEM_USE_SPLIT_GROUP`: 1 (default) → `split`, 0 → `newGroup`.
    ///
    /// - Throws: `ConfigError` for any other value.
    public static func fromEnvironment() throws(ConfigError) -> SubgroupPath {
        switch TandemEnvironment.useSplitGroup.value {
        case nil, "1": return .split
        case "0": return .newGroup
        case let text?:
            throw .invalidValue(name: TandemEnvironment.useSplitGroup.name, value: text, expected: "1 (split) or 0 (new group)")
        }
    }
}

extension ProcessGroup {
    /// Creates sub-groups of this group — `torch.distributed.new_group` for a whole list at once, like vLLM's
    /// parallel state. Every rank of this group calls it with the same `groups`, in the same order as its
    /// other splits; each rank gets the group that contains it, or nil.
    ///
    /// - Parameters:
    ///   - groups: lists of ranks of this group; no rank in two lists. Members are ordered as listed: rank i
    ///     of a sub-group is `groups[k][i]`.
    ///   - name: the sub-groups' name; with several lists, group k is named `name.k`.
    ///   - path: `split` (carve from this group's connections and memory) or `newGroup` (fresh rendezvous);
    ///     nil reads `TANDEM_USE_SPLIT_GROUP`.
    /// - Throws: `CommError.invalidArgument` for a malformed list, `.bootstrap` when the sub-group cannot be set
    ///   up (or ranks passed different lists).
    public func split(_ groups: [[Int]], name: String, path: SubgroupPath? = nil) throws(CommError) -> ProcessGroup? {
        var seen = Set<Int>()
        for list in groups {
            guard !list.isEmpty else { throw splitError(name, "a group list is empty") }
            for member in list {
                guard (0..<worldSize).contains(member) else {
                    throw splitError(name, "rank \(member) is outside 0..<\(worldSize)")
                }
                guard seen.insert(member).inserted else { throw splitError(name, "rank \(member) appears in two groups") }
            }
        }
        let chosen: SubgroupPath
        if let path {
            chosen = path
        } else {
            do {
                chosen = try SubgroupPath.fromEnvironment()
            } catch {
                throw .invalidArgument(group: self.name, operation: "split", detail: "\(error)")
            }
        }
        guard let index = groups.firstIndex(where: { $0.contains(rank) }) else {
            if chosen == .newGroup { _ = nextSplitNumber() }
            return nil
        }
        let members = groups[index]
        let groupName = groups.count == 1 ? name : "\(name).\(index)"
        switch chosen {
        case .split:
            return try ProcessGroup(carvedFrom: self, ranksInParent: members, name: groupName, listHash: Self.hash(groups))
        case .newGroup:
            // Scoped by this split's number (the same on every rank, which all call `split` in the same order), so
            // a later split that reuses a name with other members never meets this one's keys.
            let scope = PrefixStore(prefix: "tandem/split/\(self.name)/\(nextSplitNumber())", base: store)
            var settings = options
            settings.listenHost = settings.listenHost ?? (store as? TCPStore)?.localHost
            let group = try ProcessGroup(
                store: scope, rank: members.firstIndex(of: rank)!, worldSize: members.count, name: groupName, options: settings)
            group.globalRanks = members.map { globalRanks[$0] }
            return group
        }
    }

    private func splitError(_ subgroup: String, _ detail: String) -> CommError {
        .invalidArgument(group: name, operation: "split into '\(subgroup)'", detail: detail)
    }

    private static func hash(_ groups: [[Int]]) -> UInt64 {
        stableHash(groups.map { $0.map(String.init).joined(separator: ",") }.joined(separator: ";"))
    }

    // MARK: - Neighbours, in root-group ranks (vLLM's GroupCoordinator)

    /// This process's rank in the root group.
    public var globalRank: Int { globalRanks[rank] }
    /// This process's rank in this group (the same as `rank`).
    public var rankInGroup: Int { rank }
    /// The root-group rank of this group's first member.
    public var firstRank: Int { globalRanks[0] }
    /// The root-group rank of this group's last member.
    public var lastRank: Int { globalRanks[worldSize - 1] }
    /// Whether this rank is the group's first.
    public var isFirstRank: Bool { rank == 0 }
    /// Whether this rank is the group's last.
    public var isLastRank: Bool { rank == worldSize - 1 }
    /// The root-group rank of the next member (wrapping around).
    public var nextRank: Int { globalRanks[(rank + 1) % worldSize] }
    /// The root-group rank of the previous member (wrapping around).
    public var previousRank: Int { globalRanks[(rank + worldSize - 1) % worldSize] }
}
