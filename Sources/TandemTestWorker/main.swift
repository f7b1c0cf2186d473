// A rank program for the multi-process tests: started by `tandem launch`, it runs one scenario and reports
// on stdout in lines the tests parse (`RESULT …`, `ERROR …`).
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import TandemComm
import TandemParallel
import TandemTensor

func report(_ line: String) {
    print(line)
    fflush(nil)
}

func wallMilliseconds() -> Int64 {
    var spec = timespec()
    clock_gettime(CLOCK_REALTIME, &spec)
    return Int64(spec.tv_sec) * 1000 + Int64(spec.tv_nsec) / 1_000_000
}

/// `ERROR kind=… rank=… at_ms=…` for a failed collective, then exit 1 after `linger` seconds (a survivor
/// reacting to another rank's failure must not look like the first failure to the launcher).
func reportFailure(_ error: any Error, linger: Double) -> Never {
    var kind = "other"
    var rank = -1
    if let error = error as? CommError {
        switch error {
        case let .peerLost(lost, _, _): kind = "peerLost"; rank = lost
        case let .peerAborted(aborter, _, _): kind = "peerAborted"; rank = aborter
        case let .mismatch(_, peer, _, _): kind = "mismatch"; rank = peer
        case .timeout: kind = "timeout"
        case .invalidArgument: kind = "invalidArgument"
        case .shutDown: kind = "shutDown"
        case .bootstrap: kind = "bootstrap"
        case .library: kind = "library"
        }
    }
    report("ERROR kind=\(kind) rank=\(rank) at_ms=\(wallMilliseconds()) message=\(error)")
    usleep(UInt32(linger * 1e6))
    exit(1)
}

let arguments = CommandLine.arguments.dropFirst()
guard let scenario = arguments.first else {
    report("usage: tandem-test-worker collectives|matrix|parallel|queue|soak [ops=N seed=S victim=R kill-at=N regroup=K stop-file=F]|kill-mid-collective VICTIM|kill-while-idle|mismatch-size|exit-code CODE|sleep|await-peer-loss DIR")
    exit(2)
}

// Survivors of a failure report before the launcher's SIGTERM can stop them.
if ["kill-mid-collective", "kill-while-idle", "mismatch-size", "soak", "await-peer-loss"].contains(scenario) { signal(SIGTERM, SIG_IGN) }

let group: ProcessGroup
do {
    // `--fake-hosts` (last argument): even and odd ranks claim different hosts, so one machine runs a
    // hierarchical group (shared memory inside each pretend host, TCP between them).
    var options = try ProcessGroupOptions.fromEnvironment()
    let rendezvous = try Rendezvous.fromLauncher()
    if arguments.last == "--fake-hosts" { options.hostIdentity = "pretend-host-\(rendezvous.rank % 2)" }
    group = try ProcessGroup.initialize(rendezvous, options: options)
} catch {
    report("ERROR kind=init message=\(error)")
    exit(1)
}
let rank = group.rank
let world = group.worldSize

do {
    switch scenario {
    case "collectives":
        let tensor = Tensor(converting: (0..<100_003).map { Double(($0 % 5) * (rank + 1)) }, dtype: .bfloat16)
        try group.allReduce(tensor)
        let triangle = world * (world + 1) / 2
        let reduceOK = (0..<tensor.count).allSatisfy { tensor.element($0) == Double(($0 % 5) * triangle) }
        let gathered = try group.allGather(Tensor(converting: [Double(rank)], dtype: .int64))
        let gatherOK = gathered.toDoubles() == (0..<world).map(Double.init)
        let names = try group.allGatherObject("rank-\(rank)")
        let objectOK = names == (0..<world).map { "rank-\($0)" }
        try group.barrier()
        report("RESULT rank=\(rank) world=\(world) backend=\(group.backend) allReduce=\(reduceOK) allGather=\(gatherOK) objects=\(objectOK)")
    case "matrix":
        let outcome = try runMatrix(group)
        report("RESULT rank=\(rank) world=\(world) backend=\(group.backend) checks=\(outcome.checks) wrong=\(outcome.wrong) first=\(outcome.first)")
    case "kill-mid-collective":
        let victim = Int(arguments.dropFirst().first ?? "") ?? 1
        let tensor = Tensor(zeros: [1 << 20], dtype: .float32)
        for iteration in 0..<100_000 {
            if rank == victim && iteration == 20 {
                report("VICTIM rank=\(rank) at_ms=\(wallMilliseconds())")
                kill(getpid(), SIGKILL)
            }
            try group.allReduce(tensor)
        }
        report("ERROR kind=none: the loop finished without noticing the dead rank")
        exit(1)
    case "kill-while-idle":
        // The victim dies while the others sit idle between operations; their next operation must fail at once.
        try group.barrier()
        if rank == 1 {
            report("VICTIM rank=\(rank) at_ms=\(wallMilliseconds())")
            kill(getpid(), SIGKILL)
        }
        usleep(500_000)
        report("CALLING rank=\(rank) at_ms=\(wallMilliseconds())")
        try group.allReduce(Tensor(zeros: [16], dtype: .float32))
        report("ERROR kind=none: the operation after the death succeeded")
        exit(1)
    case "mismatch-size":
        let tensor = Tensor(zeros: [rank == 1 ? 1001 : 1000], dtype: .float32)
        try group.allReduce(tensor)
        report("ERROR kind=none: mismatched sizes were not detected")
        exit(1)
    case "parallel":
        // tp 2 × dp 2 through the process-wide state, on the path TANDEM_USE_SPLIT_GROUP picks.
        let state = try ParallelState.initialize(world: group, tensorParallelSize: 2, dataParallelSize: world / 2)
        let tp = Tensor(converting: [Double(rank)], dtype: .int64)
        try state.tensor.allReduce(tp)
        let dp = try state.data.allGather(Tensor(converting: [Double(rank)], dtype: .int64))
        let tpOK = tp.element(0) == Double(state.tensor.globalRanks.reduce(0, +))
        let dpOK = dp.toDoubles() == state.data.globalRanks.map(Double.init)
        report("RESULT rank=\(rank) tp=\(state.tensor.globalRanks) tpBackend=\(state.tensor.backend) tpOK=\(tpOK) dpOK=\(dpOK)")
        ParallelState.destroy()
    case "queue":
        // 500 messages of 0 … 12 KiB through 4 KiB chunks (a third overflow), then the writer's shutdown.
        let queue = try BroadcastQueue(world: group, writer: 0, chunkBytes: 4096, chunks: 4)
        var good = 0
        for index in 0..<500 {
            let message = (0..<(index * 97 % 12_000)).map { UInt8(truncatingIfNeeded: $0 &+ index) }
            if rank == 0 {
                try queue.enqueue(message)
            } else if try queue.dequeue(timeout: 30) == message {
                good += 1
            }
        }
        var closed = rank == 0
        if rank == 0 {
            queue.shutdown()
        } else {
            let last = Result { () throws(QueueError) -> [UInt8] in try queue.dequeue(timeout: 30) }
            if case let .failure(error) = last, case .closed = error { closed = true }
        }
        try group.barrier()
        report("RESULT rank=\(rank) queue good=\(rank == 0 ? 500 : good) closed=\(closed) shm=\(queue.usesSharedMemory)")
    case "exit-code":
        let code = Int32(arguments.dropFirst().first ?? "") ?? 3
        if rank == 1 { exit(code) }
        try group.barrier()
        report("RESULT rank=\(rank) barrier passed although rank 1 exited")
    case "soak":
        let (operations, wrong, regroups) = try runSoak(group, SoakOptions(arguments.dropFirst()))
        report("RESULT rank=\(rank) ops=\(operations) wrong=\(wrong) regroups=\(regroups) backend=\(group.backend) at_ms=\(wallMilliseconds())")
    case "sleep":
        report("SLEEPING rank=\(rank)")
        sleep(60)
    case "await-peer-loss":
        // Ready once every rank is connected (a file in the directory given, shared by the test's hosts), then
        // idle — no operation in flight — until the group notices a peer is gone.
        try group.barrier()
        let directory = arguments.dropFirst().first ?? "."
        FileManager.default.createFile(atPath: "\(directory)/ready-\(rank)", contents: Data())
        let deadline = Date(timeIntervalSinceNow: 60)
        while group.failure == nil && Date() < deadline { usleep(20_000) }
        guard let failure = group.failure else {
            report("ERROR kind=none: no peer was declared lost within 60 s")
            exit(1)
        }
        report("LOST rank=\(rank) at_ms=\(wallMilliseconds()) message=\(failure)")
        exit(0)
    default:
        report("ERROR unknown scenario \(scenario)")
        exit(2)
    }
} catch {
    reportFailure(error, linger: scenario == "mismatch-size" ? 0 : 0.5)
}
group.shutdown()
