import TandemComm
import TandemTensor

/// The `matrix` scenario: every collective of the API — all dtypes and reductions, the V-variants, rooted
/// operations from several roots, point-to-point, a probe and a split sub-group — on sizes 0, 1, 7, 4,099 and
/// 70,001, each result checked against its closed form. Inputs are small integers (at most 10, products of 1s
/// and 2s), so every dtype holds every sum exactly. For a backend that runs only in separate processes (MPI).
struct MatrixReport {
    var checks = 0
    var wrong = 0
    var first = ""

    mutating func check(_ actual: [Double], _ expected: [Double], _ label: @autoclosure () -> String) {
        checks += 1
        guard actual != expected else { return }
        wrong += 1
        if first.isEmpty {
            let index = (0..<min(actual.count, expected.count)).first { actual[$0] != expected[$0] } ?? min(actual.count, expected.count)
            let got = index < actual.count ? "\(actual[index])" : "nothing"
            let want = index < expected.count ? "\(expected[index])" : "nothing"
            first = "\(label()): element \(index) is \(got), expected \(want) (\(actual.count) of \(expected.count) elements)"
        }
    }
}

func runMatrix(_ group: ProcessGroup) throws -> MatrixReport {
    var report = MatrixReport()
    let (rank, world) = (group.rank, group.worldSize)
    let ranks = 0..<world
    /// Element i of rank r's input: small, different per rank and element.
    func value(_ r: Int, _ i: Int) -> Double { Double((i * 7 + r * 3) % 11) }
    func factor(_ r: Int, _ i: Int) -> Double { Double(1 + (i + r) % 2) }

    for dtype in DType.allCases {
        for count in [0, 1, 7, 4_099, 70_001] {
            let label = "\(dtype) × \(count)"
            // all-reduce, every reduction.
            for op in [ReduceOp.sum, .min, .max, .product] {
                let input = (0..<count).map { op == .product ? factor(rank, $0) : value(rank, $0) }
                let tensor = Tensor(converting: input, dtype: dtype)
                try group.allReduce(tensor, op: op)
                let expected = (0..<count).map { i -> Double in
                    switch op {
                    case .sum, .avg: ranks.reduce(0) { $0 + value($1, i) }
                    case .min: ranks.map { value($0, i) }.min()!
                    case .max: ranks.map { value($0, i) }.max()!
                    case .product: ranks.reduce(1) { $0 * factor($1, i) }
                    }
                }
                report.check(tensor.toDoubles(), expected, "allReduce \(op) \(label)")
            }
            if dtype == .float32 {
                let tensor = Tensor(converting: (0..<count).map { value(rank, $0) * Double(world) }, dtype: dtype)
                try group.allReduce(tensor, op: .avg)
                report.check(tensor.toDoubles(), (0..<count).map { i in ranks.reduce(0) { $0 + value($1, i) } }, "allReduce avg \(label)")
            }
            // reduce-scatter (equal parts) and reduce-scatter-v (rank r keeps count + r rows).
            let whole = count * world
            let scattered = try group.reduceScatter(Tensor(converting: (0..<whole).map { value(rank, $0) }, dtype: dtype))
            report.check(
                scattered.toDoubles(), (0..<count).map { j in ranks.reduce(0) { $0 + value($1, rank * count + j) } }, "reduceScatter \(label)")
            let sizes = ranks.map { count + $0 }
            let total = sizes.reduce(0, +)
            let start = sizes[..<rank].reduce(0, +)
            let ragged = try group.reduceScatterV(Tensor(converting: (0..<total).map { value(rank, $0) }, dtype: dtype), sizes: sizes)
            report.check(
                ragged.toDoubles(), (0..<sizes[rank]).map { j in ranks.reduce(0) { $0 + value($1, start + j) } }, "reduceScatterV \(label)")
            // all-gather and all-gather-v.
            let gathered = try group.allGather(Tensor(converting: (0..<count).map { value(rank, $0) }, dtype: dtype))
            report.check(gathered.toDoubles(), ranks.flatMap { r in (0..<count).map { value(r, $0) } }, "allGather \(label)")
            let gatheredV = try group.allGatherV(Tensor(converting: (0..<sizes[rank]).map { value(rank, $0) }, dtype: dtype), sizes: sizes)
            report.check(gatheredV.toDoubles(), ranks.flatMap { r in (0..<sizes[r]).map { value(r, $0) } }, "allGatherV \(label)")
            // broadcast from every root; gather to the last rank; scatter from the first.
            for root in ranks {
                let tensor = Tensor(converting: (0..<count).map { rank == root ? value(root, $0) : -1 }, dtype: dtype)
                try group.broadcast(tensor, source: root)
                report.check(tensor.toDoubles(), (0..<count).map { value(root, $0) }, "broadcast from \(root) \(label)")
            }
            let collected = try group.gather(Tensor(converting: (0..<count).map { value(rank, $0) }, dtype: dtype), destination: world - 1)
            if rank == world - 1 {
                report.check(collected?.toDoubles() ?? [], ranks.flatMap { r in (0..<count).map { value(r, $0) } }, "gather \(label)")
            }
            let part = Tensor(zeros: [count], dtype: dtype)
            let source = rank == 0 ? Tensor(converting: ranks.flatMap { r in (0..<count).map { value(r, $0) } }, dtype: dtype) : nil
            try group.scatter(source, into: part, source: 0)
            report.check(part.toDoubles(), (0..<count).map { value(rank, $0) }, "scatter \(label)")
            // all-to-all: block d of rank r holds value(r, count·d + j); all-to-all-v sends d + 1 rows to rank d.
            let exchanged = Tensor(zeros: [whole], dtype: dtype)
            try group.allToAll(Tensor(converting: (0..<whole).map { value(rank, $0) }, dtype: dtype), into: exchanged)
            report.check(exchanged.toDoubles(), ranks.flatMap { r in (0..<count).map { value(r, rank * count + $0) } }, "allToAll \(label)")
            let sendSizes = ranks.map { $0 + count % 3 }
            let receiveSizes = ranks.map { _ in rank + count % 3 }
            let outgoing = Tensor(converting: (0..<sendSizes.reduce(0, +)).map { value(rank, $0) }, dtype: dtype)
            let incoming = Tensor(zeros: [receiveSizes.reduce(0, +)], dtype: dtype)
            try group.allToAllV(outgoing, sendSizes: sendSizes, into: incoming, receiveSizes: receiveSizes)
            let offset = sendSizes[..<rank].reduce(0, +)
            report.check(incoming.toDoubles(), ranks.flatMap { r in (0..<receiveSizes[r]).map { value(r, offset + $0) } }, "allToAllV \(label)")
            // point-to-point around the ring, then a batch with both neighbours.
            if world > 1 {
                let (next, previous) = ((rank + 1) % world, (rank + world - 1) % world)
                let received = Tensor(zeros: [count], dtype: dtype)
                try group.sendReceive(Tensor(converting: (0..<count).map { value(rank, $0) }, dtype: dtype), to: next, into: received, from: previous)
                report.check(received.toDoubles(), (0..<count).map { value(previous, $0) }, "sendReceive \(label)")
            }
        }
    }
    try group.barrier()
    let names = try group.allGatherObject("rank-\(rank)")
    report.check(names == ranks.map { "rank-\($0)" } ? [1] : [0], [1], "allGatherObject")
    // A probe: rank 1 sees rank 0's message arrive before receiving it (rank 0 sends it after rank 1's go).
    if world > 1 && rank < 2 {
        let signal = Tensor(zeros: [1], dtype: .int32)
        if rank == 0 {
            try group.recv(into: signal, from: 1)
            try group.send(Tensor(converting: [42], dtype: .int32), to: 1)
        } else {
            let early = group.hasIncoming(from: 0)
            try group.send(signal, to: 0)
            var polls = 0
            while !group.hasIncoming(from: 0) && polls < 10_000_000 { polls += 1 }
            let seen = group.hasIncoming(from: 0)
            try group.recv(into: signal, from: 0)
            report.check([early ? 1 : 0, seen ? 1 : 0, signal.element(0)], [0, 1, 42], "hasIncoming")
        }
    }
    // A split: even and odd ranks, each sub-group all-reduces its members' ranks.
    let halves = [ranks.filter { $0 % 2 == 0 }, ranks.filter { $0 % 2 == 1 }].filter { !$0.isEmpty }
    if let half = try group.split(halves, name: "matrix-half") {
        let tensor = Tensor(converting: [Double(rank)], dtype: .int64)
        try half.allReduce(tensor)
        report.check(tensor.toDoubles(), [Double(ranks.filter { $0 % 2 == rank % 2 }.reduce(0, +))], "split \(half.backend) allReduce")
        half.shutdown()
    }
    try group.barrier()
    return report
}
