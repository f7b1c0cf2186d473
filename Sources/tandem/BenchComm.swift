import ArgumentParser
import Foundation
import TandemComm
import TandemTensor

/// `tandem bench comm`: collective latency and bandwidth in the nccl-tests convention.
struct BenchComm: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "comm",
        abstract: "Measure a collective over a range of sizes (nccl-tests columns: time, algbw, busbw, #wrong).",
        discussion: """
            Runs as one rank under `tandem launch`, or spawns --nproc local ranks itself. Every row is checked: \
            after the timed iterations one more run on fresh data is compared element by element with the \
            expected result, and #wrong counts the mismatches over all ranks. Time is the median per-iteration \
            time, the slowest rank's. By default each size is warmed up for --warmup-time seconds and then timed \
            over as many iterations as fill --min-time seconds (at least 20), so small messages are timed in steady \
            state rather than as wake-ups; --iters N (with --warmup W) forces a count instead.
            """)

    @Option(help: "all_reduce, all_gather, reduce_scatter, broadcast, all_to_all or send_recv.")
    var op: CommBenchmark.Operation = .allReduce

    @Option(name: .customLong("min-bytes"), help: "Smallest message (suffixes K, M, G).")
    var minBytes: ByteCount = ByteCount(4)

    @Option(name: .customLong("max-bytes"), help: "Largest message (suffixes K, M, G).")
    var maxBytes: ByteCount = ByteCount(16 << 20)

    @Option(name: .customLong("step-factor"), help: "Multiply the size by this between rows.")
    var stepFactor: Int = 2

    @Option(help: "float32, bfloat16 or float16.")
    var dtype: String = "float32"

    @Option(help: "Timed iterations per size (default: as many as fill --min-time).")
    var iters: Int?

    @Option(help: "With --iters: untimed iterations per size before timing.")
    var warmup: Int = 5

    @Option(name: .customLong("min-time"), help: "Without --iters: seconds of timed iterations per size.")
    var minTime: Double = 0.5

    @Option(name: .customLong("warmup-time"), help: "Without --iters: seconds of untimed iterations per size before timing.")
    var warmupTime: Double = 0.2

    @Option(help: "Data plane: auto (shared memory on one host), shm, tcp, hier or mpi (a build with the MPI trait, under mpirun); default: TANDEM_BACKEND, else auto.")
    var backend: BackendChoice?

    @Option(help: "Spawn this many local ranks (instead of running under tandem launch).")
    var nproc: Int?

    @Flag(help: "Print a JSON array with one object per row.")
    var json = false

    func validate() throws {
        guard let type = DType(name: dtype), [.float32, .bfloat16, .float16].contains(type) else {
            throw ValidationError("--dtype must be float32, bfloat16 or float16, got \(dtype)")
        }
        guard minBytes.value >= 0, maxBytes.value >= minBytes.value else {
            throw ValidationError("need 0 ≤ --min-bytes ≤ --max-bytes")
        }
        let element = DType(name: dtype)!.byteSize
        guard minBytes.value % element == 0, maxBytes.value % element == 0 else {
            throw ValidationError(
                "--min-bytes \(minBytes.value) and --max-bytes \(maxBytes.value) must be multiples of a \(dtype) element (\(element) bytes)")
        }
        // Each rank holds its input and output plus the check's copies: about 4 × the message.
        let ranks = nproc ?? Rendezvous.launchedLocalWorldSize() ?? 1
        let (perRank, overflow) = maxBytes.value.multipliedReportingOverflow(by: 4)
        let (needed, overflowAll) = perRank.multipliedReportingOverflow(by: max(ranks, 1))
        let available = SystemMemory.availableBytes()
        guard !overflow, !overflowAll, needed <= available else {
            throw ValidationError(
                "--max-bytes \(maxBytes.value) needs about \(overflow || overflowAll ? "more than Int.max" : String(needed)) bytes (4 × the message × \(ranks) "
                    + "local rank(s)); this host has \(available) bytes available")
        }
        guard stepFactor >= 2 else { throw ValidationError("--step-factor must be ≥ 2") }
        guard (iters ?? 1) >= 1, warmup >= 0 else { throw ValidationError("--iters must be ≥ 1 and --warmup ≥ 0") }
        guard minTime > 0, minTime.isFinite, warmupTime >= 0, warmupTime.isFinite else {
            throw ValidationError("--min-time must be > 0 and --warmup-time ≥ 0 seconds, got \(minTime) and \(warmupTime)")
        }
        if let nproc, nproc < 1 { throw ValidationError("--nproc must be ≥ 1") }
    }

    func run() throws {
        if let nproc {
            try spawnRanks(nproc)
            return
        }
        guard Rendezvous.isLaunched() else {
            throw ValidationError("give --nproc N to spawn N local ranks, or run under `tandem launch` (or mpirun, srun)")
        }
        var options = try ProcessGroupOptions.fromEnvironment()
        if let backend { options.backend = backend }
        let group = try ProcessGroup.initialize(Rendezvous.fromLauncher(), options: options)
        defer { group.shutdown() }
        let benchmark = CommBenchmark(
            group: group, operation: op, dtype: DType(name: dtype)!,
            schedule: iters.map { .count(iterations: $0, warmup: warmup) } ?? .time(seconds: minTime, warmupSeconds: warmupTime))
        var rows: [CommBenchmark.Row] = []
        if group.rank == 0 && !json { print(benchmark.tableHeader()) }
        for bytes in sizes() {
            let row = try benchmark.measure(bytes: bytes)
            rows.append(row)
            if group.rank == 0 && !json {
                print(row.tableLine)
                fflush(nil)
            }
        }
        if group.rank == 0 && json {
            print(try jsonLine(rows))
        }
        if rows.contains(where: { $0.wrong > 0 }) { throw ExitCode(3) }
    }

    private func sizes() -> [Int] {
        var result: [Int] = []
        var bytes = max(minBytes.value, 0)
        while bytes <= maxBytes.value {
            result.append(bytes)
            if bytes == 0 { bytes = 1; continue }
            bytes *= stepFactor
        }
        return result
    }
}

/// Re-runs this command as `count` local ranks through the launcher, without its `removing` option (output
/// unprefixed, so tables and JSON print as rank 0 writes them).
func spawnRanks(_ count: Int, removing option: String = "--nproc") throws {
    var arguments = Array(CommandLine.arguments.dropFirst())
    if let index = arguments.firstIndex(where: { $0 == option }) {
        arguments.removeSubrange(index...min(index + 1, arguments.count - 1))
    }
    arguments.removeAll { $0.hasPrefix(option + "=") }
    var configuration = LaunchConfiguration(processesPerNode: count, program: selfExecutable(), arguments: arguments)
    configuration.masterPort = 0
    configuration.prefixOutput = false
    configuration.wrapper = [selfExecutable(), "launch-child", "--"]
    let outcome = try ProcessLauncher.run(configuration)
    if outcome.exitCode != 0 { throw ExitCode(outcome.exitCode) }
}

extension BackendChoice: ExpressibleByArgument {}

/// The path of the running executable.
func selfExecutable() -> String {
    #if os(Linux)
    if let path = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") { return path }
    #endif
    return CommandLine.arguments[0]
}

/// A byte count option accepting K, M and G suffixes (powers of 1024).
struct ByteCount: ExpressibleByArgument {
    let value: Int

    init(_ value: Int) { self.value = value }

    init?(argument: String) {
        let text = argument.uppercased().replacingOccurrences(of: "IB", with: "").replacingOccurrences(of: "B", with: "")
        let multipliers: [Character: Int] = ["K": 1 << 10, "M": 1 << 20, "G": 1 << 30]
        if let last = text.last, let multiplier = multipliers[last], let number = Int(text.dropLast()) {
            let (product, overflow) = number.multipliedReportingOverflow(by: multiplier)
            guard !overflow else { return nil }
            value = product
        } else if let number = Int(text) {
            value = number
        } else {
            return nil
        }
    }

    var defaultValueDescription: String { String(value) }
}
