import Foundation

/// Where and how ranks meet: the store's address plus this process's place in the job, as torchrun
/// describes it with MASTER_ADDR, MASTER_PORT, WORLD_SIZE, RANK, LOCAL_RANK and LOCAL_WORLD_SIZE.
public struct Rendezvous: Sendable, Equatable {
    /// Host of the store (rank 0 serves it).
    public var masterAddress: String
    /// Port of the store.
    public var masterPort: UInt16
    /// This process's global rank.
    public var rank: Int
    /// The number of ranks in the job.
    public var worldSize: Int
    /// This process's rank on its host.
    public var localRank: Int
    /// The number of ranks on this host.
    public var localWorldSize: Int
    /// The launcher that started this process (nil when the values were given explicitly).
    public var launcher: ClusterLauncher?
    /// With mpirun, mpiexec or srun: a job token derived from the job's id, used when `TANDEM_JOB_TOKEN` is unset.
    public var derivedToken: String?

    /// Creates a rendezvous from explicit values; see `validated()`.
    public init(masterAddress: String, masterPort: UInt16, rank: Int, worldSize: Int, localRank: Int? = nil, localWorldSize: Int? = nil) {
        self.masterAddress = masterAddress
        self.masterPort = masterPort
        self.rank = rank
        self.worldSize = worldSize
        self.localRank = localRank ?? rank
        self.localWorldSize = localWorldSize ?? worldSize
    }

    /// This rank's place from whichever launcher started it (`ClusterLauncher`, in its order): torchrun's
    /// variables (`tandem launch`), OpenMPI's, MPICH Hydra's or a Slurm step's (`fromCluster`).
    ///
    /// - Throws: `ConfigError` naming the first variable that is missing or invalid.
    public static func fromLauncher(_ environment: [String: String] = ProcessInfo.processInfo.environment) throws(ConfigError) -> Rendezvous {
        guard let launcher = ClusterLauncher.detect(environment) else { return try fromEnvironment(environment) }
        return try fromCluster(launcher, environment)
    }

    /// Reads torchrun's variables from `environment`.
    ///
    /// - Throws: `ConfigError` naming the first variable that is missing or invalid.
    public static func fromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment) throws(ConfigError) -> Rendezvous {
        let variables = LaunchVariables(environment: environment) { "start the program with `tandem launch` (or torchrun), or set \($0) yourself" }
        let address = try variables.required("MASTER_ADDR")
        guard let port = try variables.port("MASTER_PORT") else { throw .missing(name: "MASTER_PORT", hint: variables.hint("MASTER_PORT")) }
        let worldSize = try variables.integer("WORLD_SIZE")
        let rank = try variables.integer("RANK")
        let localRank = try variables.optionalInteger("LOCAL_RANK")
        let localWorld = try variables.optionalInteger("LOCAL_WORLD_SIZE")
        return try Rendezvous(
            masterAddress: address, masterPort: port, rank: rank, worldSize: worldSize, localRank: localRank,
            localWorldSize: localWorld
        ).validated()
    }

    /// Parses a `tcp://host:port` URL (IPv6 hosts in brackets) for a job of `worldSize` where this is `rank`.
    public static func fromURL(_ url: String, rank: Int, worldSize: Int) throws(ConfigError) -> Rendezvous {
        let invalid = ConfigError.invalidValue(name: "init URL", value: url, expected: "tcp://HOST:PORT")
        guard url.hasPrefix("tcp://") else { throw invalid }
        let authority = url.dropFirst("tcp://".count).split(separator: "/", maxSplits: 1).first.map(String.init) ?? ""
        guard let colon = authority.lastIndex(of: ":"), let port = UInt16(authority[authority.index(after: colon)...]), port > 0 else {
            throw invalid
        }
        var host = String(authority[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { throw invalid }
        return try Rendezvous(masterAddress: host, masterPort: port, rank: rank, worldSize: worldSize).validated()
    }

    /// Checks ranges: world size ≥ 1, rank in 0..<worldSize, local rank in 0..<localWorldSize ≤ worldSize.
    public func validated() throws(ConfigError) -> Rendezvous {
        guard worldSize >= 1 else {
            throw .invalidValue(name: "WORLD_SIZE", value: String(worldSize), expected: "an integer ≥ 1")
        }
        guard (0..<worldSize).contains(rank) else {
            throw .invalidValue(name: "RANK", value: String(rank), expected: "an integer in 0..<WORLD_SIZE (0…\(worldSize - 1))")
        }
        guard localWorldSize >= 1 && localWorldSize <= worldSize else {
            throw .invalidValue(name: "LOCAL_WORLD_SIZE", value: String(localWorldSize), expected: "an integer in 1…WORLD_SIZE (\(worldSize))")
        }
        guard (0..<localWorldSize).contains(localRank) else {
            throw .invalidValue(name: "LOCAL_RANK", value: String(localRank), expected: "an integer in 0..<LOCAL_WORLD_SIZE (\(localWorldSize))")
        }
        return self
    }
}

/// A launcher's variables, read with errors that name the variable: a missing one with `hint(name)`, an invalid
/// one with what it should be.
struct LaunchVariables {
    let environment: [String: String]
    let hint: (String) -> String

    func required(_ name: String) throws(ConfigError) -> String {
        guard let value = environment[name], !value.isEmpty else { throw .missing(name: name, hint: hint(name)) }
        return value
    }

    func integer(_ name: String) throws(ConfigError) -> Int { try parse(name, try required(name)) }

    /// An integer when the variable is set; nil when it is not.
    func optionalInteger(_ name: String) throws(ConfigError) -> Int? {
        guard let text = environment[name] else { return nil }
        return try parse(name, text)
    }

    private func parse(_ name: String, _ text: String) throws(ConfigError) -> Int {
        guard let value = Int(text.trimmingCharacters(in: .whitespaces)) else { throw .invalidValue(name: name, value: text, expected: "an integer") }
        return value
    }

    /// A TCP port when the variable is set; nil when it is not (or empty).
    func port(_ name: String) throws(ConfigError) -> UInt16? {
        guard let text = environment[name], !text.isEmpty else { return nil }
        guard let port = UInt16(text), port > 0 else { throw .invalidValue(name: name, value: text, expected: "a TCP port in 1…65535") }
        return port
    }
}

extension ProcessGroup {
    /// Joins the job described by `rendezvous`: rank 0 starts the store server on `masterPort`, every rank
    /// connects to it and builds the group named `name`. The group keeps the store alive.
    ///
    /// - Parameter options: nil reads `ProcessGroupOptions.fromEnvironment()`.
    /// - Throws: `ConfigError` for bad settings, `StoreError` when the store cannot be reached (naming the
    ///   address tried), `CommError` when the group cannot be set up.
    public static func initialize(
        _ rendezvous: Rendezvous, name: String = "world", options: ProcessGroupOptions? = nil
    ) throws -> ProcessGroup {
        var settings = try options ?? ProcessGroupOptions.fromEnvironment()
        let valid = try rendezvous.validated()
        if settings.token?.isEmpty ?? true { settings.token = valid.derivedToken }
        guard let token = settings.token, !token.isEmpty else {
            throw ConfigError.missing(
                name: TandemEnvironment.jobToken.name,
                hint: "start the ranks with `tandem launch`, which generates it, or give every rank the same secret")
        }
        let store = try TCPStore(
            host: valid.masterAddress, port: valid.masterPort, isServer: valid.rank == 0, token: token,
            timeout: settings.timeout)
        return try ProcessGroup(store: store, rank: valid.rank, worldSize: valid.worldSize, name: name, options: settings)
    }

    /// `initialize` from the launcher's environment variables (`Rendezvous.fromLauncher`) and the `TANDEM_*`
    /// settings.
    public static func initializeFromEnvironment(name: String = "world") throws -> ProcessGroup {
        try initialize(try Rendezvous.fromLauncher(), name: name)
    }
}
