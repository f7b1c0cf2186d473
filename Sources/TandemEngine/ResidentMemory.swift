import Foundation

/// Resident memory of processes (VmRSS of /proc/PID/status; 0 where /proc is missing), for the benchmarks'
/// memory figures.
public enum ResidentMemory {
    /// Bytes resident for process `pid` (nil: this process).
    public static func bytes(pid: Int32? = nil) -> Int {
        guard let status = try? String(contentsOfFile: "/proc/\(pid.map(String.init) ?? "self")/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
            let kilobytes = Int(line.split(separator: " ").dropFirst().first ?? "")
        else { return 0 }
        return kilobytes * 1024
    }
}

extension LLM {
    /// Resident bytes of each rank's process, by rank. With spawned workers rank 0 reads them alone; with a
    /// group of peers (SPMD) this is a collective every rank calls.
    public func residentBytesPerRank() throws -> [Int] {
        if let spawnedRanks { return [ResidentMemory.bytes()] + spawnedRanks.childPIDs.map { ResidentMemory.bytes(pid: $0) } }
        return try model.group.group?.allGatherObject(ResidentMemory.bytes()) ?? [ResidentMemory.bytes()]
    }
}
