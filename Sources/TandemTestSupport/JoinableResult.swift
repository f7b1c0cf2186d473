import Foundation

/// Runs a throwing closure on a thread and holds its result.
public final class JoinableResult<Value>: @unchecked Sendable {
    private var result: Result<Value, any Error>?
    private let done = DispatchSemaphore(value: 0)

    public init(_ body: @escaping @Sendable () throws -> Value) {
        Thread { [self] in
            result = Result { try body() }
            done.signal()
        }.start()
    }

    /// The closure's result, once it has returned.
    public var value: Result<Value, any Error> {
        done.wait()
        done.signal()
        return result!
    }
}
