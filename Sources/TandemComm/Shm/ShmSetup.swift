#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The identity ranks compare to find the peers they can share memory with: the host name plus the kernel's
/// boot id (two machines cloned from one image share a name, never a boot id).
enum HostIdentity {
    static func current() -> String {
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

/// Segment names: `/tdm<16 hex digits>-<rank>`, the hex being a hash of the job token, the group's name and
/// generation and its size, so concurrent jobs and groups never collide and the name stays within the
/// 31 characters macOS allows.
enum ShmNaming {
    static func base(token: String, group: String, generation: Int64, worldSize: Int) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325  // FNV-1a
        for byte in "\(token)\u{0}\(group)\u{0}\(generation)\u{0}\(worldSize)".utf8 {
            hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3
        }
        let hex = String(hash, radix: 16)
        return "/tdm" + String(repeating: "0", count: 16 - hex.count) + hex
    }

    static func segment(base: String, rank: Int) -> String { "\(base)-\(rank)" }
}

extension ProcessGroup {
    /// Moves the group onto shared memory when every member shares this host; runs once, from `init`, after
    /// the TCP mesh is up (its steps are small all-gathers over TCP).
    ///
    /// 1. All-gather (host identity, segment base name): different hosts → TCP (`auto`) or an error (`shm`);
    ///    different names mean the ranks disagree on token or group, an error.
    /// 2. Each rank creates and reserves its segment; all-gather the outcomes. A full /dev/shm → a warning
    ///    naming the size needed and TCP (`auto`), or an error (`shm`).
    /// 3. Each rank maps every peer's segment — the probe that they really share /dev/shm (containers on one
    ///    machine share a boot id but not always /dev/shm); all-gather the outcomes.
    /// 4. Each rank unlinks its own name: from here on nothing is left in /dev/shm, even after `kill -9`.
    ///
    /// - Returns: the mapped memory, or nil to stay on TCP.
    func setUpSharedMemory(token: String, generation: Int64) throws(CommError) -> ShmMemory? {
        let forced = options.backend == .shm
        let identity = options.hostIdentity ?? HostIdentity.current()
        let base = ShmNaming.base(token: token, group: name, generation: generation, worldSize: worldSize)
        let peers = try allGatherObject([identity, base])
        if let other = peers.firstIndex(where: { $0[1] != base }) {
            throw .bootstrap(group: name, detail: "rank \(other) derived shared-memory name \(peers[other][1]), this rank \(base): the ranks disagree on job token or group")
        }
        if let away = peers.firstIndex(where: { $0[0] != identity }) {
            guard !forced else {
                throw .bootstrap(
                    group: name,
                    detail: "\(TandemEnvironment.backend.name)=shm needs every rank on one host, but rank \(away) is on \(peers[away][0]) and rank \(rank) on \(identity)")
            }
            return nil
        }
        let layout = ShmLayout(
            worldSize: worldSize, exchangeBytes: options.sharedBufferBytes, slotBytes: ShmTransport.slotBytes, slots: ShmTransport.slots)
        let ownName = ShmNaming.segment(base: base, rank: rank)
        var own: SharedSegment?
        var problem = ""
        do {
            own = try SharedSegment.create(name: ownName, byteCount: layout.byteCount)
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
                segments.append(try SharedSegment.open(name: ShmNaming.segment(base: base, rank: peer), byteCount: layout.byteCount))
            } catch {
                problem = "cannot map rank \(peer)'s segment (is /dev/shm shared between them?): \(error)"
                break
            }
        }
        if let failed = try firstProblem(allGatherObject(problem)) {
            return try fallBack("rank \(failed.rank): \(failed.problem)", forced: forced)
        }
        Log.debug("group '\(name)' rank \(rank): shared memory \(base)-*, \(layout.byteCount) bytes per rank")
        return ShmMemory(
            rank: rank, layout: layout, segments: segments,
            wait: SpinWait(health: health, yieldNanoseconds: 5_000_000))
    }

    private func firstProblem(_ problems: [String]) -> (rank: Int, problem: String)? {
        problems.enumerated().first { !$0.element.isEmpty }.map { ($0.offset, $0.element) }
    }

    private func fallBack(_ reason: String, forced: Bool) throws(CommError) -> ShmMemory? {
        if forced { throw .bootstrap(group: name, detail: "shared memory unavailable: \(reason)") }
        Log.warning("group '\(name)': shared memory unavailable, using TCP: \(reason)")
        return nil
    }
}
