import Foundation

/// The launchers whose ranks Tandem joins without flags, in the order it looks for them: torchrun's variables
/// (what `tandem launch` sets), OpenMPI's `mpirun`, MPICH's `mpiexec` (Hydra's PMI variables), then Slurm's `srun`.
/// An MPI launcher inside a Slurm allocation sets Slurm's variables too; its own describe the ranks that exist,
/// so it comes first.
public enum ClusterLauncher: String, Sendable, CaseIterable {
    case torchrun = "torchrun (or tandem launch)"
    case openMPI = "OpenMPI's mpirun"
    case hydra = "MPICH's mpiexec (Hydra)"
    case slurm = "Slurm's srun"

    /// The variable whose presence says the launcher started this process.
    var rankVariable: String {
        switch self {
        case .torchrun: "RANK"
        case .openMPI: "OMPI_COMM_WORLD_RANK"
        case .hydra: "PMI_RANK"
        // The step's own variable: an sbatch script (the batch step, one process) has SLURM_PROCID but no step id.
        case .slurm: "SLURM_STEP_ID"
        }
    }

    /// The variable holding the job's number of ranks.
    var worldVariable: String {
        switch self {
        case .torchrun: "WORLD_SIZE"
        case .openMPI: "OMPI_COMM_WORLD_SIZE"
        case .hydra: "PMI_SIZE"
        case .slurm: "SLURM_STEP_NUM_TASKS"
        }
    }

    /// The launcher that started this process as a rank of a job, if any. A cluster launcher's job of one task
    /// (`srun -n 1 tandem serve --tp 2`) is not one: the process is on its own and may spawn its ranks.
    public static func detect(_ environment: [String: String]) -> ClusterLauncher? {
        allCases.first { launcher in
            guard let rank = environment[launcher.rankVariable], !rank.isEmpty else { return false }
            return launcher == .torchrun || environment[launcher.worldVariable]?.trimmingCharacters(in: .whitespaces) != "1"
        }
    }
}

extension Rendezvous {
    /// Derived store ports are `derivedPortBase ..< derivedPortBase + derivedPortCount`.
    public static let derivedPortBase = 20000
    public static let derivedPortCount = 12000

    /// Whether a launcher started this process as a rank of a job (any of `ClusterLauncher`'s).
    public static func isLaunched(_ environment: [String: String] = ProcessInfo.processInfo.environment) -> Bool {
        ClusterLauncher.detect(environment) != nil
    }

    /// The ranks on this host when a launcher started this process; nil when none did, or its variables are
    /// invalid (`fromLauncher` says how when the group is made).
    public static func launchedLocalWorldSize(_ environment: [String: String] = ProcessInfo.processInfo.environment) -> Int? {
        isLaunched(environment) ? (try? fromLauncher(environment))?.localWorldSize : nil
    }

    /// The rendezvous of a process started by mpirun, mpiexec or srun: rank, world and local rank from the
    /// launcher's variables; the store at `MASTER_ADDR` or else the first host of a Slurm step's node list, or
    /// this host when every rank runs here; port `MASTER_PORT` or else one derived from the job's id (20000 +
    /// a hash mod 12000, the same on every rank: below Linux's ephemeral range, 32768 up, where a port is more
    /// often taken by some connection); a job token derived from the job's id when `TANDEM_JOB_TOKEN`
    /// is not set (it keeps jobs apart; it is not a secret — set the variable on a shared cluster).
    static func fromCluster(_ launcher: ClusterLauncher, _ environment: [String: String]) throws(ConfigError) -> Rendezvous {
        let variables = LaunchVariables(environment: environment) { _ in "\(launcher.rawValue) sets it for each rank it starts; is this process one of them?" }
        let rank: Int, worldSize: Int, localRank: Int, localWorldSize: Int
        var nodeList: String?
        var jobKey: String?
        switch launcher {
        case .torchrun:
            var rendezvous = try fromEnvironment(environment)
            rendezvous.launcher = .torchrun
            return rendezvous
        case .openMPI:
            (rank, worldSize) = (try variables.integer("OMPI_COMM_WORLD_RANK"), try variables.integer("OMPI_COMM_WORLD_SIZE"))
            (localRank, localWorldSize) = (try variables.integer("OMPI_COMM_WORLD_LOCAL_RANK"), try variables.integer("OMPI_COMM_WORLD_LOCAL_SIZE"))
            jobKey = environment["OMPI_MCA_ess_base_jobid"] ?? environment["PMIX_NAMESPACE"]
        case .hydra:
            (rank, worldSize) = (try variables.integer("PMI_RANK"), try variables.integer("PMI_SIZE"))
            (localRank, localWorldSize) = (try variables.integer("MPI_LOCALRANKID"), try variables.integer("MPI_LOCALNRANKS"))
        case .slurm:
            (rank, worldSize) = (try variables.integer("SLURM_PROCID"), try variables.integer("SLURM_STEP_NUM_TASKS"))
            localRank = try variables.integer("SLURM_LOCALID")
            let node = try variables.integer("SLURM_NODEID")
            let perNode = try SlurmHostlist.tasksPerNode(try variables.required("SLURM_STEP_TASKS_PER_NODE"))
            guard (0..<perNode.count).contains(node) else {
                throw .invalidValue(
                    name: "SLURM_NODEID", value: String(node), expected: "a node of SLURM_STEP_TASKS_PER_NODE's \(perNode.count)")
            }
            localWorldSize = perNode[node]
            nodeList = try variables.required("SLURM_STEP_NODELIST")
            jobKey = "\(try variables.required("SLURM_JOB_ID")).\(try variables.required("SLURM_STEP_ID"))"
        }
        let oneHost = localWorldSize == worldSize
        // Ranks of one host share the launcher's per-host daemon as their parent: a job key when none is exported.
        if jobKey == nil && oneHost { jobKey = "ppid-\(getppid())" }
        let address: String
        if let given = environment["MASTER_ADDR"], !given.isEmpty {
            address = given
        } else if let nodeList {
            address = try SlurmHostlist.expand(nodeList, variable: "SLURM_STEP_NODELIST")[0]
        } else if oneHost {
            address = "127.0.0.1"
        } else {
            throw .missing(name: "MASTER_ADDR", hint: "\(launcher.rawValue) runs ranks on several hosts; export MASTER_ADDR (rank 0's host) to every rank")
        }
        let port: UInt16
        if let given = try variables.port("MASTER_PORT") {
            port = given
        } else if let jobKey {
            port = UInt16(derivedPortBase + Int(stableHash("tandem-port:\(jobKey)") % UInt64(derivedPortCount)))
        } else {
            throw .missing(name: "MASTER_PORT", hint: "\(launcher.rawValue) exports no job id to derive a port from; export MASTER_PORT to every rank")
        }
        var rendezvous = try Rendezvous(
            masterAddress: address, masterPort: port, rank: rank, worldSize: worldSize, localRank: localRank, localWorldSize: localWorldSize
        ).validated()
        rendezvous.launcher = launcher
        rendezvous.derivedToken = jobKey.map { "tandem-job-\(String(stableHash("tandem-token:\(launcher):\($0)"), radix: 16))-\($0)" }
        return rendezvous
    }
}

/// Slurm's compact host and task lists.
public enum SlurmHostlist {
    /// Expands a host list — `node[01-04,7],gpu2,rack[1-2]-n[3]` → node01 … node04, node7, gpu2, rack1-n3,
    /// rack2-n3 — keeping each range's zero padding (its lower bound's width).
    ///
    /// - Throws: `ConfigError.invalidValue` naming `variable` for a malformed list or one of more than 65,536 hosts.
    public static func expand(_ list: String, variable: String = "SLURM_STEP_NODELIST") throws(ConfigError) -> [String] {
        let invalid = { (why: String) in ConfigError.invalidValue(name: variable, value: list, expected: "a Slurm host list such as node[01-04,7],gpu2 (\(why))") }
        var hosts: [String] = []
        for expression in try splitTopLevel(list, invalid) {
            var expansions = [""]
            var rest = Substring(expression)
            while !rest.isEmpty {
                if let open = rest.firstIndex(of: "[") {
                    let prefix = rest[..<open]
                    guard let close = rest[open...].firstIndex(of: "]") else { throw invalid("an unclosed [") }
                    let choices = try ranges(rest[rest.index(after: open)..<close], invalid)
                    expansions = expansions.flatMap { head in choices.map { head + prefix + $0 } }
                    guard expansions.count <= 65_536 else { throw invalid("more than 65,536 hosts") }
                    rest = rest[rest.index(after: close)...]
                } else {
                    guard !rest.contains("]") else { throw invalid("a ] without [") }
                    expansions = expansions.map { $0 + rest }
                    rest = ""
                }
            }
            hosts += expansions
            guard hosts.count <= 65_536 else { throw invalid("more than 65,536 hosts") }
        }
        guard !hosts.isEmpty, !hosts.contains(where: \.isEmpty) else { throw invalid("an empty host") }
        return hosts
    }

    /// Tasks on each node from `SLURM_STEP_TASKS_PER_NODE`: `2(x3),1` → [2, 2, 2, 1].
    public static func tasksPerNode(_ list: String, variable: String = "SLURM_STEP_TASKS_PER_NODE") throws(ConfigError) -> [Int] {
        let invalid = ConfigError.invalidValue(name: variable, value: list, expected: "counts such as 2(x3),1")
        var counts: [Int] = []
        for item in list.split(separator: ",", omittingEmptySubsequences: false) {
            var text = Substring(item)
            var repeats = 1
            if text.hasSuffix(")"), let open = text.firstIndex(of: "(") {
                let inside = text[text.index(after: open)..<text.index(before: text.endIndex)]
                guard inside.hasPrefix("x"), let times = Int(inside.dropFirst()), times >= 1, times <= 65_536 else { throw invalid }
                repeats = times
                text = text[..<open]
            }
            guard let count = Int(text), count >= 1 else { throw invalid }
            counts += Array(repeating: count, count: repeats)
            guard counts.count <= 65_536 else { throw invalid }
        }
        return counts
    }

    /// The list split at commas outside brackets.
    private static func splitTopLevel(_ list: String, _ invalid: (String) -> ConfigError) throws(ConfigError) -> [String] {
        var parts: [String] = []
        var current = ""
        var depth = 0
        for character in list {
            switch character {
            case "[": depth += 1
            case "]":
                depth -= 1
                guard depth >= 0 else { throw invalid("a ] without [") }
            case "," where depth == 0:
                parts.append(current)
                current = ""
                continue
            default: break
            }
            guard depth <= 1 else { throw invalid("nested brackets") }
            current.append(character)
        }
        guard depth == 0 else { throw invalid("an unclosed [") }
        parts.append(current)
        return parts
    }

    /// `01-04,7` → 01, 02, 03, 04, 7 (a range keeps its lower bound's width).
    private static func ranges(_ text: Substring, _ invalid: (String) -> ConfigError) throws(ConfigError) -> [String] {
        var values: [String] = []
        for item in text.split(separator: ",", omittingEmptySubsequences: false) {
            let bounds = item.split(separator: "-", omittingEmptySubsequences: false)
            guard bounds.count <= 2, bounds.allSatisfy({ !$0.isEmpty && $0.allSatisfy(\.isASCII) && $0.allSatisfy(\.isNumber) }),
                let low = Int(bounds[0]), let high = Int(bounds.last!), low <= high
            else { throw invalid("a bad range '\(item)'") }
            guard high - low < 65_536 else { throw invalid("more than 65,536 hosts") }
            let width = bounds[0].count
            for value in low...high {
                let digits = String(value)
                values.append(String(repeating: "0", count: max(0, width - digits.count)) + digits)
            }
        }
        return values
    }
}
