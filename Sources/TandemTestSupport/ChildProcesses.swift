import Foundation

/// The children of a process, whichever of its threads started them (/proc lists them per thread).
public func childProcesses(of pid: pid_t = getpid()) -> [pid_t] {
    let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []
    return tasks.flatMap { task in
        ((try? String(contentsOfFile: "/proc/\(pid)/task/\(task)/children", encoding: .utf8)) ?? "").split(separator: " ").compactMap { pid_t($0) }
    }.sorted()
}
