/// One message to send in a `transfer`: a header and a payload read straight from the caller's memory.
struct OutgoingMessage {
    var peer: Int
    var header: WireHeader
    var payload: UnsafeRawPointer?
    var bytes: Int
}

/// One message to receive in a `transfer`: the header expected and where the payload goes.
struct IncomingMessage {
    var peer: Int
    var expected: WireHeader
    var destination: UnsafeMutableRawPointer?
    var bytes: Int
}

/// What a failing transfer reports: the group, operation and sequence number of the collective it serves.
struct OperationContext {
    var group: String
    /// `WireHeader.groupIdentifier(group)`, computed once per group.
    var groupIdentifier: UInt32
    var operation: OperationKind
    var sequence: UInt64
    var deadline: Deadline
    var timeoutSeconds: Double
}

/// The small protocol every algorithm is written against: move a set of header-tagged messages to and from
/// peers, all at once, by a deadline.
///
/// `TCPTransport` implements it over sockets; a shared-memory backend implements the same call over mapped
/// buffers, and every algorithm in this folder runs unchanged on either.
protocol MessageTransport: AnyObject, Sendable {
    /// Sends every message in `sends` and receives every message in `receives`, returning when all are
    /// complete. Each received header is checked against the expected one before the payload is trusted.
    ///
    /// - Throws: `CommError.timeout` at `context.deadline`, `.peerLost`, `.mismatch`, or the group's failure.
    func transfer(sends: [OutgoingMessage], receives: [IncomingMessage], context: OperationContext) throws(CommError)

    /// Whether bytes from `peer` are waiting to be received (or its connection ended): MPI's `Iprobe`. Never
    /// consumes anything and never blocks.
    func hasIncoming(from peer: Int) -> Bool
}
