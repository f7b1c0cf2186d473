/// Settings of one process group; `fromEnvironment()` reads the `TANDEM_*` variables.
public struct ProcessGroupOptions: Sendable {
    /// Deadline of each operation and of the group's setup, in seconds.
    public var timeout: Double
    /// The job secret every connection presents; required when the world has more than one rank.
    public var token: String?
    /// The address peers connect to; nil picks `TANDEM_SOCKET_IFNAME`'s address, else the interface that
    /// routes to the store.
    public var listenHost: String?
    /// The all-reduce algorithm (`auto` picks by size).
    public var allReduceAlgorithm: AllReduceAlgorithm
    /// How long a waiting operation busy-polls before sleeping, in microseconds.
    public var spinMicroseconds: Double

    /// Creates options with explicit values.
    public init(
        timeout: Double = 300, token: String? = nil, listenHost: String? = nil,
        allReduceAlgorithm: AllReduceAlgorithm = .auto, spinMicroseconds: Double = 50
    ) {
        self.timeout = timeout
        self.token = token
        self.listenHost = listenHost
        self.allReduceAlgorithm = allReduceAlgorithm
        self.spinMicroseconds = spinMicroseconds
    }

    /// Options from `TANDEM_COMM_TIMEOUT_S`, `TANDEM_JOB_TOKEN`, `TANDEM_SOCKET_IFNAME`, `TANDEM_SPIN_US` and
    /// `TANDEM_ALLREDUCE_ALGO`.
    ///
    /// - Throws: `ConfigError` naming the variable whose value is invalid.
    public static func fromEnvironment() throws(ConfigError) -> ProcessGroupOptions {
        var options = ProcessGroupOptions()
        options.timeout = try TandemEnvironment.seconds(TandemEnvironment.commTimeout)
        options.token = TandemEnvironment.jobToken.value
        if let interface = TandemEnvironment.socketInterface.value {
            options.listenHost = try interfaceAddress(named: interface)
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
        return options
    }
}
