#if MPI
import CMPI

/// Point-to-point messages over an MPI communicator: each message is two MPI messages to or from its peer, the
/// 40-byte `WireHeader` and then the payload (MPI keeps messages between a pair in order), all posted at once
/// (`MPI_Isend`/`MPI_Irecv`) and polled together against the deadline. Every received header is checked
/// against the expected one, so mismatched sizes, dtypes and orders surface as `mismatch` as on the other
/// backends; a payload larger than expected is MPI's truncation error, reported with the header that
/// announced it.
final class MPITransport: MessageTransport, @unchecked Sendable {
    private let communicator: MPI_Comm?
    private let wait: SpinWait
    /// The one tag of Tandem's point-to-point messages (MPI's collectives use their own context).
    private static let tag: Int32 = 0

    /// Header slots and request handles, kept from transfer to transfer (a group runs one at a time) and grown
    /// when a transfer has more messages. After a failed transfer MPI may still write into them, so they are then
    /// left allocated and fresh ones made (a few bytes per failed group).
    private var headers: UnsafeMutableRawPointer
    private var requests: UnsafeMutablePointer<MPI_Request?>
    private var capacity: Int

    init(communicator: MPI_Comm?, wait: SpinWait) {
        self.communicator = communicator
        self.wait = wait
        capacity = 4
        headers = .allocate(byteCount: capacity * WireHeader.byteCount, alignment: 8)
        requests = .allocate(capacity: 2 * capacity)
    }

    deinit {
        headers.deallocate()
        requests.deallocate()
    }

    /// Makes room for `messages` messages; with `abandoning`, leaves the current buffers to MPI (after a failure).
    private func prepareBuffers(for messages: Int, abandoning: Bool = false) {
        guard abandoning || messages > capacity else { return }
        if !abandoning {
            headers.deallocate()
            requests.deallocate()
        }
        capacity = max(messages, capacity)
        headers = .allocate(byteCount: capacity * WireHeader.byteCount, alignment: 8)
        requests = .allocate(capacity: 2 * capacity)
    }

    func transfer(sends: [OutgoingMessage], receives: [IncomingMessage], context: OperationContext) throws(CommError) {
        let messages = sends.count + receives.count
        // Sizes are checked before anything is posted, so a refusal leaves nothing behind.
        for message in sends { _ = try MPIRuntime.count(message.bytes, "bytes in one message", context) }
        for message in receives { _ = try MPIRuntime.count(message.bytes, "bytes in one message", context) }
        prepareBuffers(for: messages)
        let (headers, requests) = (headers, requests)
        headers.initializeMemory(as: UInt8.self, repeating: 0, count: messages * WireHeader.byteCount)
        requests.initialize(repeating: tandem_mpi_request_null(), count: 2 * messages)
        // Once anything is posted, a transfer whose requests do not all complete leaves its buffers to MPI.
        var completed = false
        defer { if !completed { prepareBuffers(for: messages, abandoning: true) } }
        let headerBytes = Int32(WireHeader.byteCount)
        var code: Int32 = 0
        for (index, message) in sends.enumerated() where code == 0 {
            let header = headers + index * WireHeader.byteCount
            let peer = Int32(message.peer)
            message.header.encode(into: header)
            code = MPI_Isend(header, headerBytes, tandem_mpi_byte(), peer, Self.tag, communicator, requests + 2 * index)
            if code == 0 {
                code = MPI_Isend(message.payload, Int32(message.bytes), tandem_mpi_byte(), peer, Self.tag, communicator, requests + 2 * index + 1)
            }
        }
        for (offset, message) in receives.enumerated() where code == 0 {
            let index = sends.count + offset
            let header = headers + index * WireHeader.byteCount
            let peer = Int32(message.peer)
            code = MPI_Irecv(header, headerBytes, tandem_mpi_byte(), peer, Self.tag, communicator, requests + 2 * index)
            if code == 0 {
                code = MPI_Irecv(
                    message.destination, Int32(message.bytes), tandem_mpi_byte(), peer, Self.tag, communicator, requests + 2 * index + 1)
            }
        }
        try MPIRuntime.check(code, group: context.group, operation: "\(context.operation) (MPI_Isend/MPI_Irecv)")
        var failure: Int32 = 0
        // Asked between yields while waiting: computed once.
        let peers = Set(sends.map(\.peer) + receives.map(\.peer)).sorted()
        try wait.until(context, silent: { peers }, departureGrace: MPIRuntime.departureGrace) {
            var done: Int32 = 0
            let result = MPI_Testall(Int32(2 * messages), requests, &done, tandem_mpi_statuses_ignore())
            if result != 0 { failure = result }
            return done != 0 || result != 0
        }
        completed = failure == 0
        for (offset, message) in receives.enumerated() {
            let header = headers + (sends.count + offset) * WireHeader.byteCount
            guard let received = WireHeader.decode(from: header) else {
                if failure != 0 { break }
                throw .mismatch(
                    group: context.group, peer: message.peer, expected: message.expected.summary,
                    received: "bytes that are not a Tandem message header")
            }
            if received != message.expected {
                throw .mismatch(group: context.group, peer: message.peer, expected: message.expected.summary, received: received.summary)
            }
        }
        try MPIRuntime.check(failure, group: context.group, operation: "\(context.operation) (MPI_Testall)")
    }

    func hasIncoming(from peer: Int) -> Bool {
        var flag: Int32 = 0
        let code = MPI_Iprobe(Int32(peer), Self.tag, communicator, &flag, tandem_mpi_status_ignore())
        return code == 0 && flag != 0
    }
}
#endif
