/// Settings of one process group; `fromEnvironment()` reads the `TANDEM_*` variables.
public struct ProcessGroupOptions: Sendable {
    /// Deadline of each operation and of the group's setup, in seconds.
    public var timeout: Double
    /// Seconds after which a peer host that stopped answering (no FIN: power lost, link cut) is declared lost —
    /// the keep-alive bound of the group's liveness connections (whole seconds, at least 2). A process that dies
    /// is noticed at once regardless (its kernel closes the connections).
    public var peerTimeout: Double = 5
    /// The job secret every connection presents; required when the world has more than one rank.
    public var token: String?
    /// The address peers connect to; nil picks `TANDEM_SOCKET_IFNAME`'s address, else the interface that
    /// routes to the store.
    public var listenHost: String?
    /// The all-reduce algorithm (`auto` picks by size).
    public var allReduceAlgorithm: AllReduceAlgorithm
    /// TCP data connections to each peer (`TANDEM_SOCKETS_PER_PEER`, 1–16); messages of
    /// `TCPTransport.stripeThreshold` bytes and more are split across them. Every rank of a group must agree.
    public var socketsPerPeer = 1
    /// How long a waiting operation busy-polls before sleeping, in microseconds.
    public var spinMicroseconds: Double
    /// The data plane to use (`auto`: shared memory when all members share a host).
    public var backend: BackendChoice
    /// Bytes in each of the two halves of a rank's shared-memory exchange area (the most a rank contributes
    /// to one round of a shared-memory collective); a positive multiple of 64.
    public var sharedBufferBytes: Int
    /// How the MPI backend waits for its collectives (`TANDEM_MPI_WAIT`).
    public var mpiWait: MPIWait = .deadline
    /// This process's host, as compared between ranks to find those that can share memory; nil reads the
    /// host name and boot id. Tests set it to make ranks of one machine pretend to live on several.
    public var hostIdentity: String?
    /// Polled every 100 ms while this rank's setup waits for peers to connect; a reason ends the setup at once
    /// with `CommError.bootstrap` giving it (a spawner that saw a child exit uses it instead of waiting out
    /// `timeout`).
    public var setupAbandoned: (@Sendable () -> String?)?

    /// Default bytes per exchange half (`TANDEM_SHM_BUFFER_KB`).
    public static let defaultSharedBufferBytes = 1 << 20

    /// Creates options with explicit values.
    public init(
        timeout: Double = 300, token: String? = nil, listenHost: String? = nil,
        allReduceAlgorithm: AllReduceAlgorithm = .auto, spinMicroseconds: Double = 50, backend: BackendChoice = .auto,
        sharedBufferBytes: Int = defaultSharedBufferBytes, hostIdentity: String? = nil
    ) {
        self.timeout = timeout
        self.token = token
        self.listenHost = listenHost
        self.allReduceAlgorithm = allReduceAlgorithm
        self.spinMicroseconds = spinMicroseconds
        self.backend = backend
        self.sharedBufferBytes = sharedBufferBytes
        self.hostIdentity = hostIdentity
    }

    /// Options from `TANDEM_COMM_TIMEOUT_S`, `TANDEM_JOB_TOKEN`, `TANDEM_SOCKET_IFNAME`, `TANDEM_SOCKETS_PER_PEER`, `TANDEM_SPIN_US`,
    /// `TANDEM_ALLREDUCE_ALGO`, `TANDEM_BACKEND`, `TANDEM_SHM_BUFFER_KB`, `TANDEM_MPI_WAIT` and `TANDEM_HOST_ID`.
    ///
    /// - Throws: `ConfigError` naming the variable whose value is invalid.
    public static func fromEnvironment() throws(ConfigError) -> ProcessGroupOptions {
        var options = ProcessGroupOptions()
        options.timeout = try TandemEnvironment.seconds(TandemEnvironment.commTimeout)
        options.peerTimeout = try TandemEnvironment.seconds(TandemEnvironment.peerTimeout)
        guard options.peerTimeout >= 2, options.peerTimeout <= 3600, options.peerTimeout.rounded() == options.peerTimeout else {
            let name = TandemEnvironment.peerTimeout.name
            throw .invalidValue(name: name, value: TandemEnvironment.peerTimeout.value ?? "", expected: "whole seconds from 2 to 3600")
        }
        options.token = TandemEnvironment.jobToken.value
        if let interface = TandemEnvironment.socketInterface.value {
            options.listenHost = try interfaceAddress(named: interface)
        }
        if let text = TandemEnvironment.socketsPerPeer.value {
            guard let count = Int(text), (1...16).contains(count) else {
                throw .invalidValue(name: TandemEnvironment.socketsPerPeer.name, value: text, expected: "a whole number from 1 to 16")
            }
            options.socketsPerPeer = count
        }
        if let text = TandemEnvironment.spin.value {
            guard let microseconds = Double(text), microseconds >= 0, microseconds.isFinite else {
                throw .invalidValue(name: TandemEnvironment.spin.name, value: text, expected: "a number of microseconds ≥ 0")
            }
            options.spinMicroseconds = microseconds
        }
        if let text = TandemEnvironment.allReduceAlgorithm.value {
            guard let algorithm = AllReduceAlgorithm(rawValue: text.lowercased()) else {
                throw .invalidValue(
                    name: TandemEnvironment.allReduceAlgorithm.name, value: text,
                    expected: AllReduceAlgorithm.allCases.map(\.rawValue).joined(separator: ", "))
            }
            options.allReduceAlgorithm = algorithm
        }
        if let text = TandemEnvironment.backend.value {
            guard let backend = BackendChoice(rawValue: text.lowercased()) else {
                throw .invalidValue(
                    name: TandemEnvironment.backend.name, value: text, expected: BackendChoice.allCases.map(\.rawValue).joined(separator: ", "))
            }
            options.backend = backend
        }
        if let text = TandemEnvironment.sharedBuffer.value {
            guard let kilobytes = Int(text), kilobytes > 0, kilobytes <= Int.max / 4096 else {
                throw .invalidValue(name: TandemEnvironment.sharedBuffer.name, value: text, expected: "a positive number of KiB")
            }
            options.sharedBufferBytes = kilobytes * 1024
        }
        if let text = TandemEnvironment.mpiWait.value {
            guard let wait = MPIWait(rawValue: text.lowercased()) else {
                throw .invalidValue(name: TandemEnvironment.mpiWait.name, value: text, expected: MPIWait.allCases.map(\.rawValue).joined(separator: ", "))
            }
            options.mpiWait = wait
        }
        options.hostIdentity = TandemEnvironment.hostIdentity.value
        return options
    }
}

/// How the MPI backend runs a collective: a choice between Tandem's failure model and MPI's fastest path, because
/// OpenMPI's nonblocking collectives (what a deadline needs) are a separate, slower implementation than its
/// blocking ones (docs/PERFORMANCE.md measures both).
public enum MPIWait: String, Sendable, CaseIterable {
    /// MPI's nonblocking collective, polled against the operation's deadline and the group's failure flag: a
    /// timeout or a dead peer ends the wait with a `CommError`.
    case deadline
    /// MPI's blocking collective: MPI's own fastest algorithms, but nothing can end the call early — a dead peer
    /// is handled as MPI handles it (mpirun ends the job), and `TANDEM_COMM_TIMEOUT_S` does not apply to it.
    case blocking
}
