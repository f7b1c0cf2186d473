import Glibc

/// One packet on its way to a host: its bytes and the monotonic time it is due there.
struct Packet {
    var bytes: [UInt8]
    /// Due times from one source strictly increase (each packet takes at least a nanosecond on its wire), so the
    /// queue keeps each source's order.
    var due: UInt64
}

/// The packets on their way to one host, earliest due first. Sources push from their reader threads; the host's
/// delivery thread takes the packets that are due, sleeping until the next one is.
final class DeliveryQueue: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    /// A binary min-heap on `due`; guarded by `mutex`.
    private var heap: [Packet] = []

    init() {
        pthread_mutex_init(mutex, nil)
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        pthread_cond_init(condition, &attributes)
        pthread_condattr_destroy(&attributes)
    }

    /// Adds `packet`; wakes the delivery thread when it is now the first due.
    func push(_ packet: Packet) {
        pthread_mutex_lock(mutex)
        heap.append(packet)
        var child = heap.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard heap[child].due < heap[parent].due else { break }
            heap.swapAt(child, parent)
            child = parent
        }
        if child == 0 { pthread_cond_signal(condition) }
        pthread_mutex_unlock(mutex)
    }

    /// Waits until the first packet is due and returns every packet due by then, in order.
    func takeDue() -> [Packet] {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        while true {
            guard let first = heap.first else {
                pthread_cond_wait(condition, mutex)
                continue
            }
            if first.due <= Clock.now() { break }
            var time = timespec(tv_sec: Int(first.due / 1_000_000_000), tv_nsec: Int(first.due % 1_000_000_000))
            pthread_cond_timedwait(condition, mutex, &time)
        }
        let now = Clock.now()
        var due: [Packet] = []
        while let first = heap.first, first.due <= now { due.append(popFirst()) }
        return due
    }

    private func popFirst() -> Packet {
        let first = heap[0]
        let last = heap.removeLast()
        guard !heap.isEmpty else { return first }
        heap[0] = last
        var parent = 0
        while true {
            let left = 2 * parent + 1
            guard left < heap.count else { break }
            let right = left + 1
            let child = right < heap.count && heap[right].due < heap[left].due ? right : left
            guard heap[child].due < heap[parent].due else { break }
            heap.swapAt(child, parent)
            parent = child
        }
        return first
    }
}

/// The monotonic clock, in nanoseconds.
enum Clock {
    static func now() -> UInt64 {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
    }
}
