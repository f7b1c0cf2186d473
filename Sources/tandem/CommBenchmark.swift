import ArgumentParser
import Foundation
import TandemComm
import TandemTensor

/// Times one collective at one size, checks its result, and reports nccl-tests figures.
struct CommBenchmark {
    enum Operation: String, ExpressibleByArgument, CaseIterable, Codable {
        case allReduce = "all_reduce"
        case allGather = "all_gather"
        case reduceScatter = "reduce_scatter"
        case broadcast
        case allToAll = "all_to_all"
        case sendReceive = "send_recv"

        /// The library's name for the operation.
        var kind: OperationKind {
            switch self {
            case .allReduce: .allReduce
            case .allGather: .allGather
            case .reduceScatter: .reduceScatter
            case .broadcast: .broadcast
            case .allToAll: .allToAll
            case .sendReceive: .send
            }
        }

        /// busbw = algbw × this factor (nccl-tests' PERFORMANCE.md definitions).
        func busFactor(ranks: Int) -> Double {
            let n = Double(ranks)
            switch self {
            case .allReduce: return 2 * (n - 1) / n
            case .allGather, .reduceScatter, .allToAll: return (n - 1) / n
            case .broadcast, .sendReceive: return 1
            }
        }
    }

    /// One row of the table / one JSON object.
    struct Row: Encodable {
        let op: String
        let bytes: Int
        let count: Int
        let dtype: String
        let ranks: Int
        let backend: String
        let algorithm: String
        let time_us: Double
        let algbw_gbps: Double
        let busbw_gbps: Double
        let wrong: Int
        /// Timed iterations.
        let iters: Int

        var tableLine: String {
            String(
                format: "%12d %12d %9@ %10@ %10.2f %8.3f %8.3f %7d %9d", bytes, count, dtype as NSString, algorithm as NSString,
                time_us, algbw_gbps, busbw_gbps, wrong, iters)
        }
    }

    let group: ProcessGroup
    let operation: Operation
    let dtype: DType
    let schedule: Schedule

    /// How many iterations a size runs.
    enum Schedule {
        /// `warmup` untimed, then `iterations` timed.
        case count(iterations: Int, warmup: Int)
        /// Untimed in doubling batches until the slowest rank has spent `warmupSeconds`, then as many timed as
        /// the last batch's pace says fill `seconds` (at least `minimumIterations`).
        case time(seconds: Double, warmupSeconds: Double)
    }

    static let minimumIterations = 20
    static let maximumIterations = 10_000_000

    func tableHeader() -> String {
        """
        # tandem bench comm: \(operation.rawValue), \(group.worldSize) ranks, backend \(group.backend), dtype \(dtype)
        # time: median per-iteration µs (slowest rank); algbw = bytes/time; busbw per nccl-tests
        #       size        count      type  algorithm   time(us)  algbw(GB/s) busbw(GB/s) #wrong     iters
        """
    }

    /// Element count for `bytes`, rounded down to what the operation can split evenly over the ranks.
    private func elementCount(bytes: Int) -> Int {
        let count = bytes / dtype.byteSize
        switch operation {
        case .allGather, .reduceScatter, .allToAll:
            return count - count % group.worldSize
        case .allReduce, .broadcast, .sendReceive:
            return count
        }
    }

    func measure(bytes requested: Int) throws -> Row {
        let count = elementCount(bytes: requested)
        let ranks = group.worldSize
        let buffers = makeBuffers(count: count)
        let iterations = try warmUp(buffers)
        var times: [Double] = []
        times.reserveCapacity(iterations)
        try group.barrier()
        for _ in 0..<iterations {
            let start = DispatchTime.now().uptimeNanoseconds
            try execute(buffers)
            times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1000)
        }
        times.sort()
        let median = times[times.count / 2]
        let slowest = Tensor([Float(median)])
        try group.allReduce(slowest, op: .max)
        let time = Double(slowest.element(0))

        fill(buffers)
        try execute(buffers)
        let wrong = Tensor(converting: [Double(countWrong(buffers))], dtype: .int64)
        try group.allReduce(wrong)

        let bytes = count * dtype.byteSize
        let algbw = time > 0 ? Double(bytes) / (time * 1000) : 0
        return Row(
            op: operation.rawValue, bytes: bytes, count: count, dtype: dtype.description, ranks: ranks, backend: group.backend.rawValue,
            algorithm: group.algorithmName(operation.kind, bytes: bytes), time_us: time, algbw_gbps: algbw,
            busbw_gbps: algbw * operation.busFactor(ranks: ranks), wrong: Int(wrong.element(0)), iters: iterations)
    }

    /// Runs the untimed iterations; returns how many to time. Every rank runs the same counts: a time-based
    /// warm-up agrees on the slowest rank's time after each batch.
    private func warmUp(_ buffers: Buffers) throws -> Int {
        switch schedule {
        case let .count(iterations, warmup):
            for _ in 0..<warmup { try execute(buffers) }
            return iterations
        case let .time(seconds, warmupSeconds):
            var batch = 1
            var spent = 0.0
            var perIteration = 0.0
            repeat {
                let start = DispatchTime.now().uptimeNanoseconds
                for _ in 0..<batch { try execute(buffers) }
                let slowest = Tensor([Float(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)])
                try group.allReduce(slowest, op: .max)
                let elapsed = Double(slowest.element(0))
                spent += elapsed
                perIteration = elapsed / Double(batch)
                batch *= 2
            } while spent < warmupSeconds && batch <= Self.maximumIterations
            let wanted = seconds / max(perIteration, 1e-9)
            return Int(min(max(wanted, Double(Self.minimumIterations)), Double(Self.maximumIterations)))
        }
    }

    // MARK: - Buffers, data and checks

    /// Input and output of one operation (the same tensor when it runs in place).
    private struct Buffers {
        let input: Tensor
        let output: Tensor
    }

    private func makeBuffers(count: Int) -> Buffers {
        let ranks = group.worldSize
        switch operation {
        case .allReduce, .broadcast:
            let tensor = Tensor(zeros: [count], dtype: dtype)
            return Buffers(input: tensor, output: tensor)
        case .allGather:
            return Buffers(input: Tensor(zeros: [count / ranks], dtype: dtype), output: Tensor(zeros: [count], dtype: dtype))
        case .reduceScatter:
            return Buffers(input: Tensor(zeros: [count], dtype: dtype), output: Tensor(zeros: [count / ranks], dtype: dtype))
        case .allToAll, .sendReceive:
            return Buffers(input: Tensor(zeros: [count], dtype: dtype), output: Tensor(zeros: [count], dtype: dtype))
        }
    }

    private func execute(_ buffers: Buffers) throws {
        let ranks = group.worldSize
        let rank = group.rank
        switch operation {
        case .allReduce: try group.allReduce(buffers.input)
        case .allGather: try group.allGather(buffers.input, into: buffers.output)
        case .reduceScatter: try group.reduceScatter(buffers.input, into: buffers.output)
        case .broadcast: try group.broadcast(buffers.input, source: 0)
        case .allToAll: try group.allToAll(buffers.input, into: buffers.output)
        case .sendReceive:
            if ranks == 1 {
                buffers.output.baseAddress.copyMemory(from: buffers.input.baseAddress, byteCount: buffers.input.byteCount)
            } else {
                try group.sendReceive(buffers.input, to: (rank + 1) % ranks, into: buffers.output, from: (rank + ranks - 1) % ranks)
            }
        }
    }

    // Small integers, exact in bfloat16 (≤ 256) even after summing over 8 ranks.
    private func reduceValue(_ index: Int, rank: Int) -> Double { Double((index % 3 + 1) * (rank + 1)) }
    private func ownValue(_ index: Int, rank: Int) -> Double { Double(rank + 1 + index % 5) }

    private func fill(_ buffers: Buffers) {
        let rank = group.rank
        let ranks = group.worldSize
        let input = buffers.input
        for index in 0..<input.count {
            switch operation {
            case .allReduce, .reduceScatter: input.setElement(index, reduceValue(index, rank: rank))
            case .allGather, .sendReceive: input.setElement(index, ownValue(index, rank: rank))
            case .broadcast: input.setElement(index, rank == 0 ? Double(index % 7 + 1) : 0)
            case .allToAll:
                let block = input.count / ranks
                input.setElement(index, Double(rank * ranks + index / block + (index % block) % 3))
            }
        }
    }

    private func countWrong(_ buffers: Buffers) -> Int {
        let rank = group.rank
        let ranks = group.worldSize
        let triangle = ranks * (ranks + 1) / 2
        let output = buffers.output
        var wrong = 0
        for index in 0..<output.count {
            let expected: Double
            switch operation {
            case .allReduce: expected = Double((index % 3 + 1) * triangle)
            case .reduceScatter: expected = Double(((rank * output.count + index) % 3 + 1) * triangle)
            case .allGather:
                let block = output.count / ranks
                expected = ownValue(index % block, rank: index / block)
            case .broadcast: expected = Double(index % 7 + 1)
            case .allToAll:
                let block = output.count / ranks
                expected = Double((index / block) * ranks + rank + (index % block) % 3)
            case .sendReceive: expected = ownValue(index, rank: (rank + ranks - 1) % ranks)
            }
            if output.element(index) != expected { wrong += 1 }
        }
        return wrong
    }
}
