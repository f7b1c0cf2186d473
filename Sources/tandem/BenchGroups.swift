import ArgumentParser
import Foundation
import TandemComm
import TandemParallel

/// `tandem bench groups`: how long `ParallelState` takes to create its groups, split path against new-group path.
struct BenchGroups: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "groups",
        abstract: "Time the creation of the tp/pp/dp/ep groups on the split and new-group paths.",
        discussion: """
            For every tp × pp × dp whose product is the world size, creates the parallel state (all four groups, \
            expert parallelism on) --repeats times on each path and prints the median of the slowest rank's time, \
            and new-group ÷ split. Runs as one world under `tandem launch`, or spawns each --nproc size itself.
            """)

    @Option(help: "World sizes to spawn locally, comma-separated (e.g. 2,4,8).")
    var nproc: String?

    @Option(help: "Creations per shape and path.")
    var repeats: Int = 5

    @Option(help: "Data plane of the world group: auto, shm or tcp; default: TANDEM_BACKEND, else auto.")
    var backend: BackendChoice?

    func validate() throws {
        guard repeats >= 1 else { throw ValidationError("--repeats must be ≥ 1") }
        if let nproc {
            guard let sizes = Self.sizes(nproc), !sizes.isEmpty else {
                throw ValidationError("--nproc must be positive integers separated by commas, got \(nproc)")
            }
            _ = sizes
        }
    }

    private static func sizes(_ text: String) -> [Int]? {
        let parts = text.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard parts.allSatisfy({ ($0 ?? 0) >= 1 }) else { return nil }
        return parts.compactMap { $0 }
    }

    func run() throws {
        if let nproc {
            for size in Self.sizes(nproc)! { try spawnRanks(size) }
            return
        }
        guard Rendezvous.isLaunched() else {
            throw ValidationError("give --nproc 2,4,8 to spawn local worlds, or run under `tandem launch` (or mpirun, srun)")
        }
        var options = try ProcessGroupOptions.fromEnvironment()
        if let backend { options.backend = backend }
        let world = try ProcessGroup.initialize(Rendezvous.fromLauncher(), options: options)
        defer { world.shutdown() }
        let n = world.worldSize
        if world.rank == 0 {
            print("# tandem bench groups: world \(n), backend \(world.backend), median of \(repeats) (slowest rank)")
            print("#  tp  pp  dp     split(ms)  new_group(ms)  new÷split")
        }
        for tp in 1...n where n % tp == 0 {
            for pp in 1...(n / tp) where (n / tp) % pp == 0 {
                let dp = n / tp / pp
                let split = try time(world, tp, pp, dp, .split)
                let fresh = try time(world, tp, pp, dp, .newGroup)
                if world.rank == 0 {
                    print(String(format: "  %3d %3d %3d  %12.3f  %13.3f  %8.1f×", tp, pp, dp, split, fresh, fresh / split))
                    fflush(nil)
                }
            }
        }
    }

    /// The median over repeats of the slowest rank's creation time, in milliseconds.
    private func time(_ world: ProcessGroup, _ tp: Int, _ pp: Int, _ dp: Int, _ path: SubgroupPath) throws -> Double {
        var samples: [Double] = []
        for _ in 0..<repeats {
            try world.barrier()
            let start = ContinuousClock.now
            let state = try ParallelState(
                world: world, tensorParallelSize: tp, pipelineParallelSize: pp, dataParallelSize: dp, enableExpertParallel: true,
                path: path)
            let duration = ContinuousClock.now - start
            let elapsed = Double(duration.components.seconds) * 1e3 + Double(duration.components.attoseconds) / 1e15
            state.shutdown()
            samples.append(try world.allGatherObject(elapsed).max()!)
        }
        return samples.sorted()[samples.count / 2]
    }
}
