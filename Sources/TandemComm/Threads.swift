import Foundation

/// A dedicated OS thread that can be joined.
///
/// The communication library blocks threads on sockets by design (like Gloo), so it uses threads, not
/// Swift concurrency's cooperative pool, which must never block.
final class JoinableThread: @unchecked Sendable {
    /// Whether the body has returned. Its own object, so the running thread's closure holds it and the body but
    /// not this `JoinableThread`: a closure holding `self` would be a cycle through `Thread` (which keeps its
    /// closure for life), and everything the body captured — sockets, groups — would never be released.
    private final class Completion: @unchecked Sendable {
        let condition = NSCondition()
        var isFinished = false
    }

    private let completion = Completion()
    private let thread: Thread

    /// Starts `body` on a new thread named `name` with a stack of `stackBytes`.
    init(name: String, stackBytes: Int = 1 << 20, _ body: @escaping @Sendable () -> Void) {
        let completion = completion
        thread = Thread {
            body()
            completion.condition.lock()
            completion.isFinished = true
            completion.condition.broadcast()
            completion.condition.unlock()
        }
        thread.name = name
        thread.stackSize = stackBytes
        thread.start()
    }

    /// Blocks until the thread's body has returned. Called on the thread itself (an object it kept alive is
    /// released there and its deinit stops the thread) it returns at once instead of waiting forever.
    func join() {
        if Thread.current === thread { return }
        completion.condition.lock()
        while !completion.isFinished { completion.condition.wait() }
        completion.condition.unlock()
    }

    /// Blocks until the body has returned or `deadline` passes; returns whether it finished.
    func join(until deadline: Deadline) -> Bool {
        completion.condition.lock()
        defer { completion.condition.unlock() }
        while !completion.isFinished {
            let seconds = deadline.remainingSeconds
            if seconds <= 0 { return false }
            _ = completion.condition.wait(until: Date(timeIntervalSinceNow: seconds))
        }
        return true
    }
}
