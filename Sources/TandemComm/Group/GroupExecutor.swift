import Foundation

/// Runs a group's operations one at a time, in the order they were issued.
///
/// A synchronous call runs on the caller's thread when nothing is queued (no hand-off latency); otherwise it
/// waits for the queued operations first. Asynchronous calls queue for a communication thread started on
/// first use.
final class GroupExecutor: @unchecked Sendable {
    private let condition = NSCondition()
    private var queue: [() -> Void] = []
    private var queueHead = 0
    private var busy = false
    private var stopping = false
    private var thread: JoinableThread?
    private let name: String

    init(name: String) { self.name = name }

    /// Runs `body` after every earlier operation, on this thread.
    func runInline<Result>(_ body: () throws(CommError) -> Result) throws(CommError) -> Result {
        condition.lock()
        while busy || queueHead < queue.count { condition.wait() }
        busy = true
        condition.unlock()
        defer {
            condition.lock()
            busy = false
            condition.broadcast()
            condition.unlock()
        }
        return try body()
    }

    /// Queues `body` to run after every earlier operation on the communication thread.
    func submit(_ body: @escaping () -> Void) {
        condition.lock()
        if stopping {
            // Shut down: nothing will serve the queue; the body fails fast on the broken group, here.
            condition.unlock()
            body()
            return
        }
        if thread == nil {
            thread = JoinableThread(name: "tandem-comm-\(name)") { [self] in serve() }
        }
        queue.append(body)
        condition.broadcast()
        condition.unlock()
    }

    /// Lets the queued operations finish (they fail fast once the group is broken) and stops the thread.
    func stop() {
        condition.lock()
        stopping = true
        condition.broadcast()
        let running = thread
        thread = nil
        condition.unlock()
        running?.join()
    }

    private func serve() {
        while true {
            condition.lock()
            while !stopping && (busy || queueHead == queue.count) { condition.wait() }
            if queueHead == queue.count {
                condition.unlock()
                return
            }
            while busy { condition.wait() }
            let body = queue[queueHead]
            queueHead += 1
            if queueHead == queue.count {
                queue.removeAll(keepingCapacity: true)
                queueHead = 0
            }
            busy = true
            condition.unlock()
            body()
            condition.lock()
            busy = false
            condition.broadcast()
            condition.unlock()
        }
    }
}
