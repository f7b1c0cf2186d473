import TandemComm

extension LLM {
    /// Resident bytes of each rank's process, by rank. With spawned workers rank 0 reads them alone; with a
    /// group of peers (SPMD) this is a collective every rank calls.
    public func residentBytesPerRank() throws -> [Int] {
        if let spawnedRanks { return [SystemMemory.residentBytes()] + spawnedRanks.childPIDs.map { SystemMemory.residentBytes(pid: $0) } }
        return try groups.all?.allGatherObject(SystemMemory.residentBytes()) ?? [SystemMemory.residentBytes()]
    }

    /// Seconds each rank has spent in its forward passes since loading (`ModelRunner.computeSeconds`), by rank of
    /// the launched world:
    /// over a run, 1 − its growth ÷ the run's time is the rank's idle share (the pipeline bubble on stages after
    /// the first). With spawned workers the driver asks them through the plan queue; with a group of peers (SPMD)
    /// this is a collective every rank calls.
    public func computeSecondsPerRank() throws -> [Double] {
        if spawnedRanks != nil, let engine { return try engine.computeSecondsPerRank() }
        return try groups.all?.allGatherObject(runner.computeSeconds) ?? [runner.computeSeconds]
    }
}
