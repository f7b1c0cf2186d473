import Foundation

/// Memory facts of this host and its processes, from /proc (physical memory, and 0 for a process, where /proc
/// is missing): for sizing caches and refusing sizes that cannot fit, and for the benchmarks' memory figures.
public enum SystemMemory {
    /// MemAvailable of /proc/meminfo: what can be allocated without swapping.
    public static func availableBytes() -> Int {
        if let text = try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8),
            let line = text.split(separator: "\n").first(where: { $0.hasPrefix("MemAvailable:") }),
            let kibibytes = Int(line.split(separator: " ").dropFirst().first ?? "")
        {
            return kibibytes * 1024
        }
        return Int(ProcessInfo.processInfo.physicalMemory)
    }

    /// VmRSS of process `pid` (nil: this process).
    public static func residentBytes(pid: Int32? = nil) -> Int {
        guard let status = try? String(contentsOfFile: "/proc/\(pid.map(String.init) ?? "self")/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
            let kilobytes = Int(line.split(separator: " ").dropFirst().first ?? "")
        else { return 0 }
        return kilobytes * 1024
    }
}
