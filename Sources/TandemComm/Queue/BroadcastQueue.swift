import CTandemAtomics
import Foundation
import Synchronization
import TandemTensor

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Why a `BroadcastQueue` call did not deliver a message.
public enum QueueError: Error, Equatable, CustomStringConvertible {
    /// No message arrived within the dequeue's timeout; nothing was consumed, the queue is intact.
    case timeout(seconds: Double)
    /// The queue was shut down (by the writer, or this reader) and every message before that was delivered.
    case closed(queue: String)
    /// The queue's group failed (a peer died or aborted, a deadline passed while a message was in flight).
    case failed(CommError)
    /// The call does not fit this rank's role or the message.
    case invalid(queue: String, detail: String)

    public var description: String {
        switch self {
        case let .timeout(seconds): "no message within \(seconds) s"
        case let .closed(queue): "broadcast queue '\(queue)' is shut down"
        case let .failed(error): "\(error)"
        case let .invalid(queue, detail): "broadcast queue '\(queue)': \(detail)"
        }
    }
}

/// One writer, many readers: vLLM's shared-memory broadcast `MessageQueue`, which carries each step's batch
/// metadata from the scheduler to every worker.
///
/// Readers on the writer's host read a ring of `chunks` chunks in a shared-memory segment of the writer's:
/// the writer waits until every local reader has released a chunk, copies the message in, and release-stores
/// its `written` counter; each reader acquires it, copies the message out and release-stores its own `read`
/// counter (one line per reader, so readers never contend). A message larger than a chunk overflows: the chunk
/// carries only its length and the bytes follow as a frame — two point-to-point messages of the queue's group,
/// the 8-byte length (`QueueFrame.prefix`) and the bytes — through the group's transport, header-checked and
/// bounded by its deadline like any other message. Readers on other hosts get every message as such a frame. The queue runs on a group of its own (created
/// from `world` on the new-group path), so a reader blocked in `dequeue` never holds up the world's collectives.
///
/// `dequeue(timeout:)` gives `QueueError.timeout` and consumes nothing when no message comes in time; the
/// writer's `shutdown()` delivers what was enqueued and then `closed` to every reader; a reader's `shutdown()`
/// releases its own waiting `dequeue`. A dead writer or reader surfaces as `failed(peerLost)`.
public final class BroadcastQueue: @unchecked Sendable {
    /// The queue's name (its group's).
    public let name: String
    /// The writing rank (of `world`).
    public let writer: Int
    /// This rank (of `world`).
    public let rank: Int
    /// Bytes a message may have and still travel inside a chunk.
    public let inlineBytes: Int

    private let group: ProcessGroup
    private let chunkBytes: Int
    private let chunks: Int
    /// The writer's ring (writer and local readers), nil where none is mapped.
    private let ring: SharedSegment?
    /// Local readers in reader-line order (writer side) and this reader's line (reader side).
    private let localReaders: [Int]
    private let remoteReaders: [Int]
    private let readerLine: Int?
    /// Messages written (writer) or read (reader) so far.
    private var sequence: UInt64 = 0
    private let closedHere = Atomic<Bool>(false)
    private let lock = Mutex(())


    /// Creates the queue; every rank of `world` calls it with the same arguments.
    ///
    /// - Parameters:
    ///   - world: the ranks that take part (writer and readers); the queue makes its own group from them.
    ///   - writer: the rank that enqueues.
    ///   - name: the queue's name, unique among this world's queues.
    ///   - chunkBytes: bytes per chunk (a multiple of 64, at least 128); larger messages overflow to TCP.
    ///   - chunks: chunks in the ring (messages the writer may be ahead of the slowest local reader).
    public init(world: ProcessGroup, writer: Int, name: String = "queue", chunkBytes: Int = 1 << 20, chunks: Int = 8) throws(QueueError) {
        guard (0..<world.worldSize).contains(writer) else {
            throw .invalid(queue: name, detail: "writer \(writer) is outside 0..<\(world.worldSize)")
        }
        guard chunkBytes >= 128, chunkBytes % 64 == 0, chunks >= 1 else {
            throw .invalid(queue: name, detail: "chunkBytes must be a multiple of 64 ≥ 128 and chunks ≥ 1, got \(chunkBytes) and \(chunks)")
        }
        self.name = name
        self.writer = writer
        rank = world.rank
        self.chunkBytes = chunkBytes
        self.chunks = chunks
        inlineBytes = chunkBytes - QueueFrame.chunkHeaderBytes
        do throws(CommError) {
            group = try world.split([Array(0..<world.worldSize)], name: name, path: .newGroup)!
            let identity = world.options.hostIdentity ?? HostIdentity.current()
            let hosts = try group.allGatherObject(identity)
            let sameHost = (0..<world.worldSize).filter { $0 != writer && hosts[$0] == hosts[writer] }
            let ringBytes = 64 * (2 + sameHost.count) + chunks * chunkBytes
            let segmentName = try group.broadcastObject(
                world.rank == writer ? "/tdq\(String(UInt64.random(in: 0...UInt64.max), radix: 16))" : nil, source: writer)
            // The writer creates the ring, its local readers map it, then the writer unlinks its name; any
            // failure (a full /dev/shm, a /dev/shm the readers do not share) sends everyone to TCP.
            var mapped: SharedSegment?
            var problem = ""
            if world.rank == writer && !sameHost.isEmpty {
                do throws(SharedSegmentError) {
                    mapped = try SharedSegment.create(name: segmentName, byteCount: ringBytes, reservedBytes: ringBytes)
                } catch {
                    problem = "\(error)"
                }
            }
            let created = try group.allGatherObject(problem)
            if sameHost.contains(world.rank) && created.allSatisfy(\.isEmpty) {
                do throws(SharedSegmentError) {
                    mapped = try SharedSegment.open(name: segmentName, byteCount: ringBytes)
                } catch {
                    problem = "\(error)"
                }
            }
            let opened = try group.allGatherObject(problem)
            if world.rank == writer { SharedSegment.unlink(segmentName) }
            if let failed = opened.firstIndex(where: { !$0.isEmpty }) {
                Log.warning("broadcast queue '\(name)': shared memory unavailable (rank \(failed): \(opened[failed])); every reader uses TCP")
                mapped = nil
                localReaders = []
            } else {
                localReaders = sameHost
            }
            ring = mapped
            let local = localReaders
            remoteReaders = (0..<world.worldSize).filter { $0 != writer && !local.contains($0) }
            readerLine = local.firstIndex(of: world.rank)
        } catch {
            throw .failed(error)
        }
    }

    deinit { shutdown() }

    /// Whether this rank reads or writes the shared-memory ring (false for readers on other hosts, and for
    /// everyone when /dev/shm could not hold it).
    public var usesSharedMemory: Bool { ring != nil }

    /// Why a member of the queue's group is gone, noticed by the group's liveness monitor without any message
    /// being sent: the group's failure (a rank died or aborted), or `peerLost` for a rank that shut the queue down
    /// (said goodbye) — either way the writer's next message would reach no one there. Nil while all are here.
    public var lostMember: CommError? {
        if let failure = group.failure { return failure }
        return (0..<group.worldSize).first { $0 != rank && group.health.hasDeparted($0) }.map { CommError.departed($0, group: group.name) }
    }

    // MARK: - Writer

    /// Sends `message` to every reader, in order. Blocks while the ring is full (the slowest local reader is
    /// `chunks` messages behind), bounded by the group's timeout.
    public func enqueue(_ message: [UInt8]) throws(QueueError) {
        guard rank == writer else { throw .invalid(queue: name, detail: "rank \(rank) is a reader; only rank \(writer) enqueues") }
        guard message.count <= QueueFrame.maximumMessageBytes else {
            throw .invalid(queue: name, detail: "a message of \(message.count) bytes exceeds the queue's \(QueueFrame.maximumMessageBytes)")
        }
        try lock.withLock { _ throws(QueueError) in
            if closedHere.load(ordering: .acquiring) { throw .closed(queue: name) }
            try health()
            sequence += 1
            let overflow = message.count > inlineBytes
            if let ring {
                let deadline = Deadline.after(seconds: group.timeout)
                for line in localReaders.indices {
                    let read = counter(ring, 2 + line)
                    guard try wait(until: deadline, { tandem_load_acquire(read) + UInt64(chunks) >= sequence }) else {
                        throw .failed(.timeout(
                            group: name, operation: "enqueue", sequence: sequence, waitingFor: [localReaders[line]], seconds: group.timeout))
                    }
                }
                let chunk = ring.base + 64 * (2 + localReaders.count) + Int((sequence - 1) % UInt64(chunks)) * chunkBytes
                QueueFrame.ChunkHeader(length: message.count, overflow: overflow).store(to: chunk)
                if !overflow {
                    message.withUnsafeBytes { (chunk + QueueFrame.chunkHeaderBytes).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
                }
                tandem_store_release(counter(ring, 0), sequence)
            }
            for reader in (overflow ? localReaders : []) + remoteReaders { try sendFrame(message, to: reader) }
        }
    }

    /// `enqueue` of a JSON-encoded value.
    public func enqueue<Value: Encodable>(object value: Value) throws(QueueError) {
        let bytes: [UInt8]
        do {
            bytes = Array(try JSONEncoder().encode(value))
        } catch {
            throw .invalid(queue: name, detail: "cannot encode \(Value.self): \(error)")
        }
        try enqueue(bytes)
    }

    // MARK: - Reader

    /// The next message, in the writer's order.
    ///
    /// - Parameter timeout: seconds to wait for it; nil waits as long as the group's timeout allows.
    /// - Throws: `.timeout` (nothing consumed; call again), `.closed` once the writer shut the queue down
    ///   and everything before was delivered, `.failed` when the group broke.
    public func dequeue(timeout: Double? = nil) throws(QueueError) -> [UInt8] {
        guard rank != writer else { throw .invalid(queue: name, detail: "rank \(rank) is the writer; it does not dequeue") }
        return try lock.withLock { _ throws(QueueError) -> [UInt8] in
            let seconds = timeout ?? group.timeout
            let deadline = Deadline.after(seconds: seconds)
            if let ring, let line = readerLine {
                let next = sequence + 1
                let written = counter(ring, 0)
                let closed = counter(ring, 1)
                guard try wait(until: deadline, { tandem_load_acquire(written) >= next || tandem_load_acquire(closed) != 0 }) else {
                    throw .timeout(seconds: seconds)
                }
                guard tandem_load_acquire(written) >= next else { throw .closed(queue: name) }
                let chunk = ring.base + 64 * (2 + localReaders.count) + Int((next - 1) % UInt64(chunks)) * chunkBytes
                let header: QueueFrame.ChunkHeader
                do throws(ByteReader.Invalid) {
                    header = try QueueFrame.ChunkHeader(
                        decoding: Array(UnsafeRawBufferPointer(start: chunk, count: QueueFrame.chunkHeaderBytes)), inlineBytes: inlineBytes)
                } catch {
                    throw corrupt(expected: "a message header", error)
                }
                let message: [UInt8]
                if !header.overflow {
                    message = Array(UnsafeRawBufferPointer(start: chunk + QueueFrame.chunkHeaderBytes, count: header.length))
                } else {
                    guard let frame = try receiveFrame(), frame.count == header.length else {
                        throw .failed(.mismatch(
                            group: name, peer: writer, expected: "an overflow frame of \(header.length) bytes", received: "something else"))
                    }
                    message = frame
                }
                sequence = next
                tandem_store_release(counter(ring, 2 + line), next)
                return message
            }
            guard try wait(until: deadline, { readable() }) else { throw .timeout(seconds: seconds) }
            guard let frame = try receiveFrame() else { throw .closed(queue: name) }
            sequence += 1
            return frame
        }
    }

    /// `dequeue` of a JSON-encoded value.
    public func dequeue<Value: Decodable>(_ type: Value.Type, timeout: Double? = nil) throws(QueueError) -> Value {
        let bytes = try dequeue(timeout: timeout)
        do {
            return try JSONDecoder().decode(Value.self, from: Data(bytes))
        } catch {
            throw .invalid(queue: name, detail: "message \(sequence) is not a \(Value.self): \(error)")
        }
    }

    // MARK: - Shutdown

    /// Writer: every reader gets what was enqueued, then `closed`. Reader: a waiting `dequeue` on another
    /// thread returns `closed`. Idempotent; the queue's group stays up until the queue is released.
    public func shutdown() {
        guard !closedHere.exchange(true, ordering: .acquiringAndReleasing) else { return }
        guard rank == writer else { return }
        if let ring { tandem_store_release(counter(ring, 1), 1) }
        for reader in remoteReaders { try? group.send(Self.tensor(QueueFrame.prefix(length: nil)), to: reader) }
    }

    // MARK: - Helpers

    /// A frame or chunk that no writer could have produced: the stream cannot be read past it, so the queue's
    /// group fails (every later call says so) and the error names what was found.
    private func corrupt(expected: String, _ error: ByteReader.Invalid) -> QueueError {
        let failure = CommError.mismatch(group: name, peer: writer, expected: expected, received: error.description)
        _ = group.health.fail(failure)
        return .failed(group.failure ?? failure)
    }


    private func counter(_ ring: SharedSegment, _ line: Int) -> UnsafeMutablePointer<UInt64> {
        (ring.base + 64 * line).assumingMemoryBound(to: UInt64.self)
    }

    private func health() throws(QueueError) {
        if let failure = group.failure { throw .failed(failure) }
    }

    /// Waits (`SpinWait`: spin, yield, then 1 ms sleeps) until `ready()`; false when `deadline` passes first.
    /// This end's shutdown ends the wait with `closed`, the group's failure with `failed`.
    private func wait(until deadline: Deadline, _ ready: () -> Bool) throws(QueueError) -> Bool {
        let outcome: SpinWait.Outcome
        do {
            outcome = try SpinWait(health: group.health, rootRanks: group.rootRanks)
                .wait(until: deadline, abandon: { closedHere.load(ordering: .acquiring) }, ready)
        } catch {
            throw .failed(error)
        }
        switch outcome {
        case .ready: return true
        case .timedOut: return false
        case .abandoned: throw .closed(queue: name)
        }
    }

    /// Whether the writer's first message of a frame has begun to arrive (or its connection ended).
    private func readable() -> Bool { group.hasIncoming(from: writer) }

    private func sendFrame(_ message: [UInt8], to reader: Int) throws(QueueError) {
        do throws(CommError) {
            try group.send(Self.tensor(QueueFrame.prefix(length: message.count)), to: reader)
            if !message.isEmpty { try group.send(Self.tensor(message), to: reader) }
        } catch {
            throw .failed(error)
        }
    }

    /// The next frame from the writer; nil for the writer's closing frame.
    private func receiveFrame() throws(QueueError) -> [UInt8]? {
        let prefix = Tensor(zeros: [QueueFrame.prefixBytes], dtype: .int8)
        let length: Int
        do {
            try group.recv(into: prefix, from: writer)
            guard let announced = try QueueFrame.length(decodingPrefix: Self.bytes(prefix)) else { return nil }
            length = announced
        } catch let error as CommError {
            throw .failed(error)
        } catch let error as ByteReader.Invalid {
            throw corrupt(expected: "a message frame", error)
        } catch {
            preconditionFailure("unreachable: \(error)")
        }
        guard length > 0 else { return [] }
        let message = Tensor(zeros: [length], dtype: .int8)
        do throws(CommError) {
            try group.recv(into: message, from: writer)
        } catch {
            throw .failed(error)
        }
        return Self.bytes(message)
    }

    private static func tensor(_ bytes: [UInt8]) -> Tensor {
        let tensor = Tensor(zeros: [bytes.count], dtype: .int8)
        bytes.withUnsafeBytes { tensor.baseAddress.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        return tensor
    }

    private static func bytes(_ tensor: Tensor) -> [UInt8] {
        Array(UnsafeRawBufferPointer(start: tensor.baseAddress, count: tensor.byteCount))
    }
}
