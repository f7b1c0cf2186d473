import TandemComm
import TandemTensor
import XCTest

/// Serial reference computations and deterministic per-rank data for the collective tests.
///
/// Every value is a small integer, exactly representable in every dtype, so results must match bitwise.
enum Reference {
    /// Input of rank `rank` at `index` for a reduction with `op`.
    static func reduceInput(_ op: ReduceOp, rank: Int, index: Int) -> Int64 {
        switch op {
        case .product: [1, 2, -1][(index + rank) % 3]
        case .sum, .avg, .max, .min: Int64((index * 7 + rank * 3) % 9) - 4
        }
    }

    /// Input of rank `rank` at `index` for data-movement collectives (within int8's range).
    static func movedInput(rank: Int, index: Int, salt: Int = 0) -> Int64 {
        Int64((rank * 31 + index * 17 + salt * 13) % 97) - 48
    }

    /// The reduction of `worldSize` ranks' inputs at `index`, with the dtype's integer wrap-around.
    static func reduced(_ op: ReduceOp, worldSize: Int, index: Int) -> Double {
        var result = reduceInput(op, rank: 0, index: index)
        for rank in 1..<max(worldSize, 1) {
            let value = reduceInput(op, rank: rank, index: index)
            switch op {
            case .sum, .avg: result &+= value
            case .product: result &*= value
            case .max: result = max(result, value)
            case .min: result = min(result, value)
            }
        }
        return op == .avg ? Double(result) / Double(worldSize) : Double(result)
    }

    /// A tensor of `shape` whose flat element i is `value(i)`.
    static func tensor(_ shape: [Int], _ dtype: DType, _ value: (Int) -> Int64) -> Tensor {
        let count = shape.reduce(1, *)
        return Tensor(converting: (0..<count).map { Double(value($0)) }, shape: shape, dtype: dtype)
    }

    /// A description of the first differences between `actual` and `expected`, or nil when bitwise equal.
    static func difference(_ actual: Tensor, _ expected: Tensor, _ label: String) -> String? {
        if actual.isBitwiseEqual(to: expected) { return nil }
        if actual.shape != expected.shape || actual.dtype != expected.dtype {
            return "\(label): got \(actual.dtype)\(actual.shape), expected \(expected.dtype)\(expected.shape)"
        }
        let wrong = (0..<actual.count).filter { actual.element($0) != expected.element($0) }
        let first = wrong.prefix(3).map { "[\($0)] \(actual.element($0)) ≠ \(expected.element($0))" }
        return "\(label): \(wrong.count) of \(actual.count) elements differ: \(first.joined(separator: ", "))"
    }
}

/// Collects failure descriptions on rank threads; asserted on the test's thread.
final class Failures: @unchecked Sendable {
    private(set) var messages: [String] = []

    func check(_ actual: Tensor, _ expected: Tensor, _ label: @autoclosure () -> String) {
        if let message = Reference.difference(actual, expected, label()) { messages.append(message) }
    }

    func record(_ message: String) { messages.append(message) }
}

/// The data planes every collective test runs on: the same checks must hold on each. `hier` runs with the
/// ranks spread over two pretend hosts (`fakeHosts`).
let testedBackends: [BackendChoice] = [.tcp, .shm, .hier]

/// Puts even ranks on one pretend host and odd ranks on another when the backend is hierarchical, so hosts
/// are interleaved (the harder layout) and hold one or several ranks.
let fakeHosts: @Sendable (Int, inout ProcessGroupOptions) -> Void = { rank, options in
    if options.backend == .hier { options.hostIdentity = "pretend-host-\(rank % 2)" }
}

/// Runs `body` once per tested backend.
func forEachBackend(_ body: (BackendChoice) throws -> Void) rethrows {
    for backend in testedBackends { try body(backend) }
}

/// Runs `body` on `worldSize` rank threads, once per tested backend (`options.backend` is overridden), and
/// fails the test with every rank's error or recorded failure, naming the backend.
func runRanks(
    _ worldSize: Int, options: ProcessGroupOptions = ProcessGroupOptions(timeout: 60), backends: [BackendChoice] = testedBackends,
    file: StaticString = #filePath, line: UInt = #line,
    _ body: @escaping @Sendable (ProcessGroup, Failures) throws -> Void
) throws {
    for backend in backends {
        var settings = options
        settings.backend = backend
        let outcomes = try ThreadLauncher.run(worldSize: worldSize, options: settings, perRank: fakeHosts) { group -> [String] in
            let failures = Failures()
            try body(group, failures)
            return failures.messages
        }
        for (rank, outcome) in outcomes.enumerated() {
            switch outcome {
            case let .success(messages):
                for message in messages.prefix(10) {
                    XCTFail("\(backend) world \(worldSize) rank \(rank): \(message)", file: file, line: line)
                }
            case let .failure(error):
                XCTFail("\(backend) world \(worldSize) rank \(rank) threw: \(error)", file: file, line: line)
            }
        }
    }
}
