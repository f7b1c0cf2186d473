import Foundation

/// A handle to an asynchronous operation; `wait()` blocks until it completes and rethrows its error.
public final class Work: @unchecked Sendable {
    private let condition = NSCondition()
    private var outcome: Result<Void, CommError>?

    init() {}

    /// Creates a handle that is already complete.
    init(completed outcome: Result<Void, CommError>) {
        self.outcome = outcome
    }

    /// Whether the operation has finished (successfully or not).
    public var isCompleted: Bool {
        condition.lock()
        defer { condition.unlock() }
        return outcome != nil
    }

    /// Blocks until the operation completes.
    ///
    /// - Throws: the operation's `CommError`.
    public func wait() throws(CommError) {
        condition.lock()
        while outcome == nil { condition.wait() }
        let result = outcome!
        condition.unlock()
        try result.get()
    }

    func complete(_ result: Result<Void, CommError>) {
        condition.lock()
        outcome = result
        condition.broadcast()
        condition.unlock()
    }
}
