#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The identity ranks compare to find the peers they can share memory with: the host name plus the kernel's
/// boot id (two machines cloned from one image share a name, never a boot id).
public enum HostIdentity {
    /// This machine's identity (`TANDEM_HOST_ID` overrides it in `ProcessGroupOptions.fromEnvironment`).
    public static func current() -> String {
        var name = [CChar](repeating: 0, count: 256)
        gethostname(&name, name.count - 1)
        let host = text(name)
        guard let file = fopen("/proc/sys/kernel/random/boot_id", "r") else { return host }
        defer { fclose(file) }
        var line = [CChar](repeating: 0, count: 64)
        guard fgets(&line, Int32(line.count), file) != nil else { return host }
        return host + "/" + text(line).trimmingWhitespace
    }

    /// The text before the first NUL of a C buffer.
    private static func text(_ buffer: [CChar]) -> String {
        String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

extension String {
    fileprivate var trimmingWhitespace: String {
        String(self.drop { $0.isWhitespace }.reversed().drop { $0.isWhitespace }.reversed())
    }
}

/// Segment names: `/tdm<16 hex digits>-<rank>`, the hex being a hash of the job token, the group's store scope
/// (its name and generation under the prefixes of the splits it came from: two groups of one name split from
/// different parents — each data-parallel replica's "plans" — differ there) and its size, so concurrent jobs and
/// groups never collide and the name stays within the 31 characters macOS allows.
enum ShmNaming {
    static func base(token: String, scope: String, worldSize: Int) -> String {
        let hex = String(stableHash("\(token)\u{0}\(scope)\u{0}\(worldSize)"), radix: 16)
        return "/tdm" + String(repeating: "0", count: 16 - hex.count) + hex
    }

    static func segment(base: String, rank: Int) -> String { "\(base)-\(rank)" }
}

extension ProcessGroup {
    /// Chooses the data plane once the TCP mesh is up (from `init`; its steps are small all-gathers over TCP):
    /// all-gather (host identity, segment base name) — different names mean the ranks disagree on token or
    /// group, an error. One host → shared memory (`setUpSharedMemory`). Several hosts → the hierarchy when
    /// some host has two or more ranks (or `hier` is forced), TCP otherwise; `shm` forced is an error.
    func chooseDataPlane(token: String, scope: String) throws(CommError) {
        let identity = options.hostIdentity ?? HostIdentity.current()
        let base = ShmNaming.base(token: token, scope: scope, worldSize: worldSize)
        let peers = try allGatherObject([identity, base])
        if let other = peers.firstIndex(where: { $0[1] != base }) {
            throw .bootstrap(group: name, detail: "rank \(other) derived shared-memory name \(peers[other][1]), this rank \(base): the ranks disagree on job token or group")
        }
        let hosts = peers.map { $0[0] }
        guard let away = hosts.firstIndex(where: { $0 != identity }) else {
            if options.backend == .hier && rank == 0 {
                Log.warning(
                    "group '\(name)': \(TandemEnvironment.backend.name)=hier, but all \(worldSize) ranks are on one host (\(identity)): a hierarchy "
                        + "of one host is plain shared memory, which the group uses")
            }
            if let memory = try setUpSharedMemory(base: base) { useSharedMemory(memory) }
            return
        }
        if options.backend == .shm {
            throw .bootstrap(
                group: name,
                detail: "\(TandemEnvironment.backend.name)=shm needs every rank on one host, but rank \(away) is on \(hosts[away]) and rank \(rank) on \(identity)")
        }
        let crowded = Dictionary(grouping: hosts, by: { $0 }).values.contains { $0.count > 1 }
        if options.backend == .hier || crowded { try setUpHierarchy(hosts: hosts, token: token, scope: scope) }
    }

    /// Maps every member's segment (all members share this host):
    ///
    /// 1. Each rank creates and reserves its segment; all-gather the outcomes. A full /dev/shm → a warning
    ///    naming the size needed and TCP (`auto`), or an error (`shm`).
    /// 2. Each rank maps every peer's segment — the probe that they really share /dev/shm (containers on one
    ///    machine share a boot id but not always /dev/shm); all-gather the outcomes.
    /// 3. Each rank unlinks its own name: from here on nothing is left in /dev/shm, even after `kill -9`.
    ///
    /// - Returns: the mapped memory, or nil to stay on TCP.
    func setUpSharedMemory(base: String) throws(CommError) -> ShmMemory? {
        let forced = options.backend == .shm
        let layout = sharedLayout(worldSize: worldSize)
        let regionBytes = ShmPool.regionBytes(for: layout)
        let segmentBytes = regionBytes * ShmPool.defaultRegionCount
        let ownName = ShmNaming.segment(base: base, rank: rank)
        var own: SharedSegment?
        var problem = ""
        do {
            own = try SharedSegment.create(name: ownName, byteCount: segmentBytes, reservedBytes: regionBytes)
        } catch {
            problem = "\(error)"
        }
        defer { if own != nil { SharedSegment.unlink(ownName) } }
        if let failed = try firstProblem(allGatherObject(problem)) {
            return try fallBack("rank \(failed.rank): \(failed.problem)", forced: forced)
        }
        var segments: [SharedSegment] = []
        for peer in 0..<worldSize {
            if peer == rank {
                segments.append(own!)
                continue
            }
            do {
                segments.append(try SharedSegment.open(name: ShmNaming.segment(base: base, rank: peer), byteCount: segmentBytes))
            } catch {
                problem = "cannot map rank \(peer)'s segment (is /dev/shm shared between them?): \(error)"
                break
            }
        }
        if let failed = try firstProblem(allGatherObject(problem)) {
            return try fallBack("rank \(failed.rank): \(failed.problem)", forced: forced)
        }
        Log.debug("group '\(name)' rank \(rank): shared memory \(base)-*, \(regionBytes) bytes reserved per rank")
        let pool = ShmPool(segments: segments, rootRank: rank, regionBytes: regionBytes, regionCount: ShmPool.defaultRegionCount)
        return ShmMemory(rank: rank, layout: layout, pool: pool, members: Array(0..<worldSize), region: 0, wait: sharedWait)
    }

    /// Carves this split sub-group's shared memory from its parent's pool: the lowest region free on every
    /// member (`freeRegions` are the members' free bit sets, all-gathered by the caller); each member claims it
    /// in its own segment and they confirm (one small all-gather over the carved TCP connections). No common
    /// free region or no room: a warning and TCP (an error when shared memory is forced).
    func carveSharedMemory(from parent: ShmMemory, ranksInParent: [Int], freeRegions: [UInt64]) throws(CommError) -> ShmMemory? {
        let pool = parent.pool
        let common = freeRegions.reduce(~0, &)
        guard common != 0 else {
            return try fallBack(
                "no shared-memory region is free on every member (each segment holds \(pool.regionCount - 1) sub-groups at once)",
                forced: options.backend == .shm)
        }
        let region = common.trailingZeroBitCount
        let layout = sharedLayout(worldSize: worldSize)
        var problem = ""
        do {
            try pool.claim(region, controlBytes: layout.controlBytes)
        } catch {
            problem = "\(error)"
        }
        if let failed = try firstProblem(allGatherObject(problem)) {
            if problem.isEmpty { pool.release(region) }
            return try fallBack("rank \(failed.rank): \(failed.problem)", forced: options.backend == .shm)
        }
        let members = ranksInParent.map { parent.members[$0] }
        return ShmMemory(rank: rank, layout: layout, pool: pool, members: members, region: region, wait: sharedWait)
    }

    private func sharedLayout(worldSize: Int) -> ShmLayout {
        ShmLayout(worldSize: worldSize, exchangeBytes: options.sharedBufferBytes, slotBytes: ShmTransport.slotBytes, slots: ShmTransport.slots)
    }

    private var sharedWait: SpinWait { SpinWait(health: health, rootRanks: rootRanks) }

    private func firstProblem(_ problems: [String]) -> (rank: Int, problem: String)? {
        problems.enumerated().first { !$0.element.isEmpty }.map { ($0.offset, $0.element) }
    }

    private func fallBack(_ reason: String, forced: Bool) throws(CommError) -> ShmMemory? {
        if forced { throw .bootstrap(group: name, detail: "shared memory unavailable: \(reason)") }
        Log.warning("group '\(name)': shared memory unavailable, using TCP: \(reason)")
        return nil
    }
}
