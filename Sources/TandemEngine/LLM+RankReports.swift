import TandemComm
import TandemModel

extension LLM {
    /// Resident bytes of each rank's process, by rank. With spawned workers rank 0 reads them alone; with a
    /// group of peers (SPMD) this is a collective every rank calls.
    public func residentBytesPerRank() throws -> [Int] {
        if let spawnedRanks { return [SystemMemory.residentBytes()] + spawnedRanks.childPIDs.map { SystemMemory.residentBytes(pid: $0) } }
        return try groups.all?.allGatherObject(SystemMemory.residentBytes()) ?? [SystemMemory.residentBytes()]
    }

    /// Each rank's counters since loading (`ModelRunner.counters`), by rank of the launched world. With spawned
    /// workers the driver asks them through the plan queue; with a group of peers (SPMD) this is a collective every
    /// rank calls.
    public func countersPerRank() throws -> [RankCounters] {
        if spawnedRanks != nil, let engine { return try engine.countersPerRank() }
        return try groups.all?.allGatherObject(runner.counters) ?? [runner.counters]
    }
}

/// What a rank has counted since loading.
public struct RankCounters: Sendable, Codable, Equatable {
    /// Seconds in this rank's forward passes (`ModelRunner.computeSeconds`): over a run, 1 − its growth ÷ the run's
    /// time is the rank's idle share (the pipeline bubble on stages after the first).
    public var computeSeconds: Double
    /// What its MoE layers moved over expert-parallel groups spanning replicas.
    public var expertTraffic: ExpertTraffic
}
