/// Which data plane a group should use; `ProcessGroupOptions.backend`, set by `TANDEM_BACKEND`.
public enum BackendChoice: String, Sendable, CaseIterable {
    /// Shared memory when every member shares this host (and /dev/shm has room); hierarchical when the members
    /// span hosts and some host has two or more; TCP otherwise.
    case auto
    /// TCP sockets, even between ranks on one host.
    case tcp
    /// Shared memory; creating the group fails when its members span hosts or /dev/shm is too small.
    case shm
    /// Hierarchical whenever the members span hosts (even with one rank per host); shared memory on one host.
    case hier
    /// MPI's collectives and point-to-point over a communicator of the members (every rank started by one
    /// `mpirun`/`srun` job); needs a build with the `MPI` trait.
    case mpi

    /// Whether this build has the MPI backend (`swift build --traits MPI`).
    public static var buildHasMPI: Bool {
        #if MPI
        true
        #else
        false
        #endif
    }
}

/// The data plane a group runs on, decided when it is created.
public enum GroupBackend: String, Sendable, CustomStringConvertible {
    /// A one-rank group: nothing moves.
    case none
    /// TCP sockets between every pair of ranks.
    case tcp
    /// Shared-memory segments on one host.
    case sharedMemory = "shm"
    /// Several hosts: shared memory inside each, TCP among one leader per host.
    case hierarchical = "hier"
    /// An MPI communicator of the members.
    case mpi

    public var description: String { rawValue }
}
