import TandemComm

extension LLM {
    /// Resident bytes of each rank's process, by rank. With spawned workers rank 0 reads them alone; with a
    /// group of peers (SPMD) this is a collective every rank calls.
    public func residentBytesPerRank() throws -> [Int] {
        if let spawnedRanks { return [SystemMemory.residentBytes()] + spawnedRanks.childPIDs.map { SystemMemory.residentBytes(pid: $0) } }
        return try model.group.group?.allGatherObject(SystemMemory.residentBytes()) ?? [SystemMemory.residentBytes()]
    }
}
