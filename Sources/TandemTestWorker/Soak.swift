#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import TandemComm
import TandemTensor

/// Options of the `soak` scenario, as `key=value` arguments.
struct SoakOptions {
    /// Operations to run (ignored with `stopFile`).
    var operations = 10_000
    /// Seed of the operation sequence (the same on every rank).
    var seed: UInt64 = 1
    /// The rank that kills itself with SIGKILL before operation `killAt` (none when nil).
    var victim: Int?
    var killAt = 0
    /// Every this many operations, a new group of all ranks is built (a new mesh: fresh listening ports),
    /// used once and shut down. 0: never.
    var regroupEvery = 0
    /// Run until this file exists (rank 0 looks every 50 operations and tells the others).
    var stopFile: String?

    init(_ arguments: ArraySlice<String>) {
        for argument in arguments {
            let parts = argument.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2 else { continue }
            switch parts[0] {
            case "ops": operations = Int(parts[1]) ?? operations
            case "seed": seed = UInt64(parts[1]) ?? seed
            case "victim": victim = Int(parts[1])
            case "kill-at": killAt = Int(parts[1]) ?? killAt
            case "regroup": regroupEvery = Int(parts[1]) ?? regroupEvery
            case "stop-file": stopFile = parts[1]
            default: continue
            }
        }
    }
}

/// Mixed collectives with sizes drawn from a generator every rank seeds alike, each result checked against
/// its closed form (inputs are small integers, so float32 sums are exact). Returns the counts; on a failure
/// it reports `SOAK rank=… ops=… wrong=…` (what completed, and how much of it was wrong) and rethrows.
func runSoak(_ group: ProcessGroup, _ options: SoakOptions) throws -> (operations: Int, wrong: Int, regroups: Int) {
    var progress = (operations: 0, wrong: 0, regroups: 0)
    do {
        try soakLoop(group, options, &progress)
    } catch {
        report("SOAK rank=\(group.rank) ops=\(progress.operations) wrong=\(progress.wrong) regroups=\(progress.regroups)")
        throw error
    }
    return progress
}

private func soakLoop(_ group: ProcessGroup, _ options: SoakOptions, _ progress: inout (operations: Int, wrong: Int, regroups: Int)) throws {
    let rank = group.rank
    let world = group.worldSize
    var generator = SeededGenerator(seed: options.seed)
    var index: Int {
        get { progress.operations }
        set { progress.operations = newValue }
    }
    let rankSum = Double(world * (world + 1) / 2)
    while true {
        if let stopFile = options.stopFile {
            if index % 50 == 0 {
                let flag = Tensor(converting: [rank == 0 && FileManager.default.fileExists(atPath: stopFile) ? 1 : 0], dtype: .int32)
                try group.broadcast(flag, source: 0)
                if flag.element(0) == 1 { break }
            }
        } else if index == options.operations {
            break
        }
        if options.victim == rank && index == options.killAt {
            report("VICTIM rank=\(rank) op=\(index) at_ms=\(wallMilliseconds())")
            kill(getpid(), SIGKILL)
        }
        if options.regroupEvery > 0, index > 0, index % options.regroupEvery == 0 {
            guard let fresh = try group.split([Array(0..<world)], name: "soak-regroup-\(index)", path: .newGroup) else {
                throw CommError.invalidArgument(group: group.name, operation: "soak", detail: "rank \(rank) is not in its own regroup")
            }
            let probe = Tensor(converting: [Double(rank + 1)], dtype: .float32)
            try fresh.allReduce(probe)
            if probe.element(0) != rankSum { progress.wrong += 1 }
            fresh.shutdown()
            progress.regroups += 1
        }
        // Log-uniform sizes from 1 to 2^14 + 1 elements per rank.
        let count = (1 << Int.random(in: 0...14, using: &generator)) + Int.random(in: 0...1, using: &generator)
        let salt = Double(index % 3)
        let kind = Int.random(in: 0..<6, using: &generator)
        switch kind {
        case 0:  // allReduce: element j of rank r is (r+1)·(j mod 7 + 1) + salt
            let tensor = Tensor(converting: (0..<count).map { Double((rank + 1) * ($0 % 7 + 1)) + salt }, dtype: .float32)
            try group.allReduce(tensor)
            let values = tensor.toDoubles()
            if !(0..<count).allSatisfy({ values[$0] == rankSum * Double($0 % 7 + 1) + Double(world) * salt }) { progress.wrong += 1 }
        case 1:  // allGather: rank r contributes count copies of r + salt
            let gathered = try group.allGather(Tensor(converting: Array(repeating: Double(rank) + salt, count: count), dtype: .int32))
            let values = gathered.toDoubles()
            if values.count != count * world || !(0..<values.count).allSatisfy({ values[$0] == Double($0 / count) + salt }) { progress.wrong += 1 }
        case 2:  // reduceScatter: element j is j mod 5 + rank; each rank keeps its chunk of the sums
            let input = Tensor(converting: (0..<(count * world)).map { Double($0 % 5 + rank) }, dtype: .float32)
            let values = try group.reduceScatter(input).toDoubles()
            let expected = (0..<count).map { Double(world * ((rank * count + $0) % 5)) + rankSum - Double(world) }
            if values != expected { progress.wrong += 1 }
        case 3:  // broadcast from a rank the generator picks
            let source = Int.random(in: 0..<world, using: &generator)
            let tensor = Tensor(converting: (0..<count).map { rank == source ? Double($0 % 11) + salt : -1 }, dtype: .float32)
            try group.broadcast(tensor, source: source)
            let values = tensor.toDoubles()
            if !(0..<count).allSatisfy({ values[$0] == Double($0 % 11) + salt }) { progress.wrong += 1 }
        case 4:  // allToAll: rank r sends block d filled with 100·r + d
            let input = Tensor(converting: (0..<(count * world)).map { Double(100 * rank + $0 / count) }, dtype: .int32)
            let output = Tensor(zeros: [count * world], dtype: .int32)
            try group.allToAll(input, into: output)
            let values = output.toDoubles()
            if !(0..<values.count).allSatisfy({ values[$0] == Double(100 * ($0 / count) + rank) }) { progress.wrong += 1 }
        default:
            try group.barrier()
        }
        index += 1
    }
}
