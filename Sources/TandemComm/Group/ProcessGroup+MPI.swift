#if MPI
import CMPI
#endif

extension ProcessGroup {
    /// Moves a new group onto MPI (`TANDEM_BACKEND=mpi`), once its TCP connections are up (they stay: the
    /// liveness monitor watches them, and split sub-groups are carved from them): all-gather every member's
    /// place in `MPI_COMM_WORLD` over TCP, check they are one MPI job, and create the members' communicator.
    ///
    /// - Throws: `.bootstrap` when this build has no MPI, MPI cannot start, or the ranks are not one MPI job.
    func setUpMPI(scope: String) throws(CommError) {
        #if MPI
        let world = try MPIRuntime.world(group: name)
        let places = try allGatherObject([world.rank, world.size])
        if let other = places.firstIndex(where: { $0[1] != world.size }) {
            throw .bootstrap(
                group: name,
                detail: "\(TandemEnvironment.backend.name)=mpi needs every rank in one MPI job, but rank \(other)'s MPI_COMM_WORLD has "
                    + "\(places[other][1]) processes and rank \(rank)'s \(world.size) (start all ranks with one mpirun or srun)")
        }
        let worldRanks = places.map { $0[0] }
        if let repeated = worldRanks.indices.first(where: { worldRanks.firstIndex(of: worldRanks[$0]) != $0 }) {
            let first = worldRanks.firstIndex(of: worldRanks[repeated])!
            throw .bootstrap(
                group: name,
                detail: "\(TandemEnvironment.backend.name)=mpi needs every rank in one MPI job, but ranks \(first) and \(repeated) are both "
                    + "MPI rank \(worldRanks[repeated]) of a \(world.size)-process MPI_COMM_WORLD (start all ranks with one mpirun or srun, "
                    + "not each on its own)")
        }
        use(try MPIBackend(worldRanks: worldRanks, tag: Self.mpiTag(scope), group: name, health: health, rootRanks: rootRanks, wait: options.mpiWait))
        #else
        throw .bootstrap(
            group: name,
            detail: "\(TandemEnvironment.backend.name)=mpi, but this build has no MPI backend: build with `swift build --traits MPI` "
                + "(needs an MPI library, e.g. Debian's libopenmpi-dev); `tandem info` says whether a build has it")
        #endif
    }

    /// Gives a sub-group carved from an MPI group its own communicator of `members` (ranks of `parent`); a
    /// no-op when the parent is not on MPI.
    func carveMPI(from parent: ProcessGroup, members: [Int], listHash: UInt64) throws(CommError) {
        #if MPI
        guard let mpi = parent.dataPlane as? MPIBackend else { return }
        let tag = Self.mpiTag("\(parent.name)/\(name)/\(listHash)")
        use(try MPIBackend(worldRanks: members.map { mpi.worldRanks[$0] }, tag: tag, group: name, health: health, rootRanks: rootRanks, wait: options.mpiWait))
        #endif
    }

    /// Tells MPI this process saw a group fail: it will not finalise MPI at exit (finalising waits for every
    /// process of the job, which a dead one never joins).
    func noteMPIFailure() {
        #if MPI
        MPIRuntime.recordFailure()
        #endif
    }

    /// The `MPI_Comm_create_group` tag of a group: from its store scope, so groups created at once never share one.
    private static func mpiTag(_ scope: String) -> Int32 {
        Int32(stableHash(scope) % 32_767)
    }
}
