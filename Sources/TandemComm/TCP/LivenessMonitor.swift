#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Watches one dedicated connection per peer and turns a dead or aborting peer into a group failure at once.
///
/// Data connections are never read outside an operation, so a peer that dies while this rank is idle, or
/// while this rank waits on a third rank, would otherwise go unnoticed until the deadline. The liveness
/// connection carries only two messages: `goodbye` (clean shutdown, after which EOF is expected) and
/// `abort` (the peer failed; every rank fails with it). EOF without goodbye means the process died.
final class LivenessMonitor: @unchecked Sendable {
    private let group: String
    private let rank: Int
    private let sockets: [Socket?]
    private let health: GroupHealth
    private let stopPipe: (read: Int32, write: Int32)
    private var thread: JoinableThread?

    init(group: String, rank: Int, sockets: [Socket?], health: GroupHealth) throws(SystemCallError) {
        self.group = group
        self.rank = rank
        self.sockets = sockets
        self.health = health
        var ends: [Int32] = [0, 0]
        try Posix.call("pipe") { pipe(&ends) }
        _ = fcntl(ends[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(ends[1], F_SETFD, FD_CLOEXEC)
        stopPipe = (ends[0], ends[1])
        thread = JoinableThread(name: "tandem-liveness-\(group)", stackBytes: 256 << 10) { [self] in run() }
    }

    deinit {
        close(stopPipe.read)
        close(stopPipe.write)
    }

    /// Tells every peer this rank failed with `error` (best effort, never blocks).
    func broadcastAbort(_ error: CommError) {
        var lost: Int32?
        if case let .peerLost(rank, _, _) = error { lost = Int32(rank) }
        let payload = LivenessMessage.abort(lostRank: lost, reason: error.description).encoded()
        for socket in sockets.compactMap({ $0 }) { sendBestEffort(payload, on: socket) }
    }

    /// Says goodbye to every peer and stops watching. Idempotent.
    func stop(sayGoodbye: Bool) {
        guard let running = thread else { return }
        thread = nil
        if sayGoodbye {
            for socket in sockets.compactMap({ $0 }) { sendBestEffort(LivenessMessage.goodbye.encoded(), on: socket) }
        }
        var byte: UInt8 = 1
        _ = write(stopPipe.write, &byte, 1)
        running.join()
    }

    private func sendBestEffort(_ bytes: [UInt8], on socket: Socket) {
        try? socket.sendAll(bytes, deadline: .after(seconds: 0.05))
    }

    private func run() {
        var entries = [pollfd(fd: stopPipe.read, events: Int16(POLLIN), revents: 0)]
        var peers = [-1]
        for (peer, socket) in sockets.enumerated() {
            guard let socket else { continue }
            entries.append(pollfd(fd: socket.descriptor, events: Int16(POLLIN), revents: 0))
            peers.append(peer)
        }
        var pending = [[UInt8]](repeating: [], count: sockets.count)
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            guard (try? Posix.poll(&entries, timeout: { -1 })) != nil, entries[0].revents == 0 else { return }
            for index in 1..<entries.count where entries[index].revents != 0 {
                let peer = peers[index]
                let descriptor = entries[index].fd
                let received: Int?
                var failure = "its connection closed: the process exited or was killed"
                do {
                    received = try Posix.transfer("recv") { recv(descriptor, &buffer, buffer.count, 0) }
                } catch {
                    received = 0
                    failure = "connection error: \(error)"
                }
                guard let received else { continue }
                if received > 0 {
                    pending[peer] += buffer[0..<received]
                    consume(&pending[peer], from: peer)
                    continue
                }
                // EOF or a reset: the peer's process is gone (or it closed after saying goodbye).
                entries[index].fd = -1
                if !health.hasDeparted(peer) { health.fail(.peerLost(rank: peer, group: group, detail: failure)) }
            }
        }
    }

    /// Handles every complete message at the front of `buffer`.
    private func consume(_ buffer: inout [UInt8], from peer: Int) {
        do {
            while let message = try LivenessMessage.next(from: &buffer) {
                switch message {
                case .goodbye:
                    health.markDeparted(peer)
                case let .abort(lost?, _) where Int(lost) != rank:
                    health.fail(.peerLost(rank: Int(lost), group: group, detail: "reported by rank \(peer)"))
                case let .abort(_, reason):
                    health.fail(.peerAborted(rank: peer, group: group, reason: reason))
                }
            }
        } catch {
            health.fail(.peerLost(rank: peer, group: group, detail: "malformed liveness message: \(error)"))
            buffer.removeAll()
        }
    }
}
