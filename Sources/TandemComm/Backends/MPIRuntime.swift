#if MPI
import CMPI
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// MPI in this process: initialised once, when the first MPI group is created (`MPI_Init_thread` asking for
/// `MPI_THREAD_MULTIPLE`, since groups run their operations on different threads), and finalised at exit
/// unless a group failed (finalising waits for every process of the job, which a dead one never joins).
enum MPIRuntime {
    /// This process's rank and the size of `MPI_COMM_WORLD`.
    struct World: Sendable {
        let rank: Int
        let size: Int
    }

    /// Seconds an MPI wait goes on after a peer shut its group down: the peer may have finished its part of the
    /// operation first, and MPI completes it here only as this rank polls.
    static let departureGrace = 1.0

    private static let started: Result<World, StartFailure> = start()
    private static let failed = Atomic<Bool>(false)

    struct StartFailure: Error { let detail: String }

    /// Starts MPI (once) and returns this process's place in `MPI_COMM_WORLD`.
    static func world(group: String) throws(CommError) -> World {
        switch started {
        case let .success(world): return world
        case let .failure(failure): throw .bootstrap(group: group, detail: failure.detail)
        }
    }

    /// Whether `MPI_Finalize` has run (nothing may call MPI after it).
    static var isFinalized: Bool {
        var finalized: Int32 = 0
        MPI_Finalized(&finalized)
        return finalized != 0
    }

    /// Records that a group failed: the process will not finalise MPI at exit.
    static func recordFailure() { failed.store(true, ordering: .relaxed) }

    private static func start() -> Result<World, StartFailure> {
        var initialized: Int32 = 0
        MPI_Initialized(&initialized)
        var provided: Int32 = 0
        if initialized == 0 {
            let code = MPI_Init_thread(nil, nil, Int32(MPI_THREAD_MULTIPLE), &provided)
            guard code == 0 else { return .failure(StartFailure(detail: "MPI_Init_thread failed: \(message(code))")) }
            atexit {
                guard !MPIRuntime.failed.load(ordering: .relaxed), !MPIRuntime.isFinalized else { return }
                MPI_Finalize()
            }
        } else {
            MPI_Query_thread(&provided)
        }
        guard provided >= Int32(MPI_THREAD_MULTIPLE) else {
            return .failure(StartFailure(
                detail: "the MPI library gives thread level \(provided), but Tandem's groups need MPI_THREAD_MULTIPLE (\(MPI_THREAD_MULTIPLE)); "
                    + "use an MPI built with thread support"))
        }
        MPI_Comm_set_errhandler(tandem_mpi_comm_world(), tandem_mpi_errors_return())
        var rank: Int32 = 0
        var size: Int32 = 0
        MPI_Comm_rank(tandem_mpi_comm_world(), &rank)
        MPI_Comm_size(tandem_mpi_comm_world(), &size)
        return .success(World(rank: Int(rank), size: Int(size)))
    }

    /// Throws `CommError.library` naming `operation` and MPI's message for a non-success `code`.
    @inline(__always)
    static func check(_ code: Int32, group: @autoclosure () -> String, operation: @autoclosure () -> String) throws(CommError) {
        guard code != 0 else { return }
        recordFailure()
        throw .library(group: group(), operation: operation(), detail: message(code))
    }

    /// `value` as MPI's 32-bit count, or `invalidArgument` naming the limit (`unit` says what is counted).
    static func count(_ value: Int, _ unit: String, _ context: OperationContext) throws(CommError) -> Int32 {
        guard let narrow = Int32(exactly: value) else {
            throw .invalidArgument(
                group: context.group, operation: context.operation.description,
                detail: "\(value) \(unit) exceed MPI's 32-bit counts (at most \(Int32.max)); split the tensor or use another backend")
        }
        return narrow
    }

    /// MPI's text for an error code.
    static func message(_ code: Int32) -> String {
        var buffer = [CChar](repeating: 0, count: Int(MPI_MAX_ERROR_STRING) + 1)
        var length: Int32 = 0
        guard MPI_Error_string(code, &buffer, &length) == 0 else { return "MPI error \(code)" }
        return String(decoding: buffer.prefix(Int(length)).map { UInt8(bitPattern: $0) }, as: UTF8.self) + " (MPI error \(code))"
    }
}
#endif
