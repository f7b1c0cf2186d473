import Foundation

/// A dedicated OS thread that can be joined.
///
/// The communication library blocks threads on sockets by design (like Gloo), so it uses threads, not
/// Swift concurrency's cooperative pool, which must never block.
final class JoinableThread: @unchecked Sendable {
    private let finished = NSCondition()
    private var isFinished = false
    private var thread: Thread?

    /// Starts `body` on a new thread named `name` with a stack of `stackBytes`.
    init(name: String, stackBytes: Int = 1 << 20, _ body: @escaping @Sendable () -> Void) {
        let thread = Thread { [self] in
            body()
            finished.lock()
            isFinished = true
            finished.broadcast()
            finished.unlock()
        }
        thread.name = name
        thread.stackSize = stackBytes
        self.thread = thread
        thread.start()
    }

    /// Blocks until the thread's body has returned. Called on the thread itself (an object it kept alive is
    /// released there and its deinit stops the thread) it returns at once instead of waiting forever.
    func join() {
        if Thread.current === thread { return }
        finished.lock()
        while !isFinished { finished.wait() }
        finished.unlock()
    }

    /// Blocks until the body has returned or `deadline` passes; returns whether it finished.
    func join(until deadline: Deadline) -> Bool {
        finished.lock()
        defer { finished.unlock() }
        while !isFinished {
            let seconds = deadline.remainingSeconds
            if seconds <= 0 { return false }
            _ = finished.wait(until: Date(timeIntervalSinceNow: seconds))
        }
        return true
    }
}
