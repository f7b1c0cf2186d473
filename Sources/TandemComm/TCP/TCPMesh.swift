import Foundation

/// The connections of one group: `streams` data connections and a liveness connection to every peer.
///
/// Built through the store: each rank listens on an ephemeral port, publishes `port host streams` under
/// `addr/<rank>`, connects to every lower rank and accepts from every higher one. Each connection opens
/// with a hello carrying the job token, group name, the rank, the channel and which data stream it is; the
/// acceptor answers one byte. Connections with a wrong token are refused and logged; they do not count toward
/// the mesh. A rank that keeps another number of data connections than the rank it dials is refused by name.
package struct TCPMesh {
    package enum Channel: UInt8 { case data = 1, liveness = 2 }

    /// Data connections by peer rank, `streams` each (none at this rank's own index).
    var data: [[Socket]]
    /// Liveness connections by peer rank (nil at this rank's own index).
    var liveness: [Socket?]

    /// Socket buffer size asked for on data connections; large buffers let a whole ring segment be in flight.
    static let dataBufferBytes: Int32 = 4 << 20

    /// Connects the full mesh for `rank` of `worldSize`.
    ///
    /// - Parameters:
    ///   - store: a store scoped to this group instance.
    ///   - listenHost: the address peers should connect to.
    ///   - streams: data connections to each peer (`TANDEM_SOCKETS_PER_PEER`).
    /// - Throws: `CommError.bootstrap` naming the peer and address when a connection cannot be made in time.
    static func connect(
        group: String, rank: Int, worldSize: Int, store: any Store, token: String, listenHost: String, streams: Int = 1, deadline: Deadline,
        peerTimeout: Double, abandoned: (@Sendable () -> String?)? = nil
    ) throws(CommError) -> TCPMesh {
        var mesh = TCPMesh(
            data: Array(repeating: [], count: worldSize), liveness: Array(repeating: nil, count: worldSize))
        var data = Array(repeating: [Socket?](repeating: nil, count: streams), count: worldSize)
        guard worldSize > 1 else { return mesh }
        let listener: Socket
        do {
            listener = try Socket.listen(host: listenHost, port: 0)
        } catch {
            throw .bootstrap(group: group, detail: "cannot listen on \(listenHost): \(error)")
        }
        let port = listener.localAddress.port
        do {
            try store.set("addr/\(rank)", string: "\(port) \(listenHost) \(streams)")
        } catch {
            throw .bootstrap(group: group, detail: "publishing this rank's address: \(error)")
        }
        for peer in 0..<rank {
            let (host, peerPort, peerStreams) = try lookUp(peer, group: group, store: store, deadline: deadline)
            guard peerStreams == streams else {
                throw .bootstrap(
                    group: group,
                    detail: "rank \(peer) keeps \(peerStreams) data connection(s) per peer and rank \(rank) \(streams): "
                        + "\(TandemEnvironment.socketsPerPeer.name) must be the same on every rank")
            }
            for stream in 0...streams {
                let channel = stream < streams ? Channel.data : .liveness
                let socket = try dial(
                    peer: peer, host: host, port: peerPort, stream: stream < streams ? stream : 0, channel: channel, group: group, rank: rank,
                    worldSize: worldSize, token: token, deadline: deadline)
                if channel == .data { data[peer][stream] = socket } else { mesh.liveness[peer] = socket }
            }
        }
        // A peer's connections are slots peer × (streams + 1) + stream, the liveness one last.
        let slots = streams + 1
        var awaited = Set((rank + 1..<worldSize).flatMap { peer in (0..<slots).map { peer * slots + $0 } })
        // Each connection is greeted on a thread of its own, so a peer that connects and stays silent (or a
        // stranger) costs the setup nothing; those still greeting when the mesh is whole are cut off.
        let greeters = Greeters()
        defer { greeters.cancelAndJoin() }
        while !awaited.isEmpty {
            for (socket, address, peer, stream, channel) in greeters.takeGreeted() {
                let slot = peer * slots + (channel == .data ? stream : streams)
                guard channel == .liveness || stream < streams, awaited.remove(slot) != nil else {
                    Log.warning("group '\(group)': duplicate or unexpected connection from rank \(peer) (\(address), data stream \(stream)) ignored")
                    socket.close()
                    continue
                }
                if channel == .data { data[peer][stream] = socket } else { mesh.liveness[peer] = socket }
            }
            if awaited.isEmpty { break }
            if let reason = abandoned?() { throw .bootstrap(group: group, detail: reason) }
            if deadline.hasPassed {
                let missing = Set(awaited.map { $0 / slots }).sorted()
                throw .bootstrap(
                    group: group,
                    detail: "timed out waiting for rank(s) \(missing.map(String.init).joined(separator: ", ")) to connect to \(listenHost):\(port)")
            }
            let incoming: (socket: Socket, peer: String)?
            do {
                // Short slices: greetings finish on their threads, and an abandoned setup ends within 10 ms.
                incoming = try listener.accept(deadline: min(deadline, .after(seconds: 0.01)))
            } catch {
                throw .bootstrap(group: group, detail: "accepting peer connections: \(error)")
            }
            if let incoming {
                greeters.start(incoming.socket, from: incoming.peer) {
                    greet(incoming.socket, from: incoming.peer, group: group, rank: rank, worldSize: worldSize, token: token)
                }
            }
        }
        mesh.data = data.map { $0.compactMap { $0 } }
        for socket in mesh.data.joined() { socket.configureForData(bufferBytes: dataBufferBytes) }
        // The liveness connections are idle but always read (the monitor thread): the ones to watch for a host
        // that vanished without closing them.
        for socket in mesh.liveness.compactMap({ $0 }) { socket.enableDeadPeerDetection(seconds: Int32(peerTimeout)) }
        return mesh
    }

    private static func lookUp(_ peer: Int, group: String, store: any Store, deadline: Deadline) throws(CommError) -> (String, UInt16, Int) {
        let text: String
        do {
            text = try store.getString("addr/\(peer)", timeout: max(deadline.remainingSeconds, 0.001))
        } catch {
            throw .bootstrap(group: group, detail: "waiting for rank \(peer) to publish its address: \(error)")
        }
        let parts = text.split(separator: " ")
        guard parts.count == 3, let port = UInt16(parts[0]), let streams = Int(parts[2]), streams >= 1 else {
            throw .bootstrap(group: group, detail: "rank \(peer) published a malformed address \(text.debugDescription)")
        }
        return (String(parts[1]), port, streams)
    }

    private static func dial(
        peer: Int, host: String, port: UInt16, stream: Int, channel: Channel, group: String, rank: Int, worldSize: Int,
        token: String, deadline: Deadline
    ) throws(CommError) -> Socket {
        do {
            let socket = try Socket.connect(host: host, port: port, deadline: deadline)
            let hello = PeerHello(token: Array(token.utf8), group: group, rank: rank, worldSize: worldSize, stream: stream, channel: channel)
            try socket.sendAll(hello.frame(), deadline: deadline)
            let answer = try socket.receive(count: 1, deadline: deadline)
            guard answer == [PeerHello.accepted] else {
                throw CommError.bootstrap(
                    group: group, detail: "rank \(peer) at \(host):\(port) refused the connection (job token or group mismatch)")
            }
            return socket
        } catch let error as CommError {
            throw error
        } catch {
            throw .bootstrap(group: group, detail: "connecting to rank \(peer) at \(host):\(port): \(error)")
        }
    }

    /// Reads and checks a hello; answers it. Nil (after logging) when the connection is refused.
    /// Runs on a greeter thread.
    private static func greet(
        _ socket: Socket, from address: String, group: String, rank: Int, worldSize: Int, token: String
    ) -> (Int, Int, Channel)? {
        let deadline = Deadline.after(seconds: 10)
        guard let lengthBytes = try? socket.receive(count: 4, deadline: deadline) else {
            Log.warning("group '\(group)': connection from \(address) sent no hello; dropped")
            return nil
        }
        let hello: PeerHello
        do {
            guard let length = try PeerHello.bodyLength(lengthBytes) else {
                Log.warning("group '\(group)': connection from \(address) announced a hello of more than \(PeerHello.maximumBytes) bytes; dropped")
                return nil
            }
            hello = try PeerHello(decoding: try socket.receive(count: length, deadline: deadline))
        } catch let error as ByteReader.Invalid {
            Log.warning("group '\(group)': connection from \(address) sent a malformed hello (\(error)); dropped")
            return nil
        } catch {
            Log.warning("group '\(group)': connection from \(address) sent no complete hello (\(error)); dropped")
            return nil
        }
        guard constantTimeEqual(hello.token, Array(token.utf8)) else {
            Log.warning("group '\(group)': refused connection from \(address): wrong job token")
            try? socket.sendAll([PeerHello.refused], deadline: deadline)
            return nil
        }
        guard hello.group == group, hello.worldSize == worldSize, hello.rank > rank, hello.rank < worldSize else {
            Log.warning(
                "group '\(group)': refused connection from \(address): it is rank \(hello.rank) of \(hello.worldSize) in group '\(hello.group)'")
            try? socket.sendAll([PeerHello.refused], deadline: deadline)
            return nil
        }
        guard (try? socket.sendAll([PeerHello.accepted], deadline: deadline)) != nil else { return nil }
        return (hello.rank, hello.stream, hello.channel)
    }
}

/// The threads greeting a group's incoming connections, and what they found.
private final class Greeters: @unchecked Sendable {
    /// Connections greeted at once; more are closed (and logged) until some finish.
    static let limit = 64

    private let condition = NSCondition()
    private var greeted: [(Socket, String, Int, Int, TCPMesh.Channel)] = []
    private var inFlight: [ObjectIdentifier: Socket] = [:]
    private var threads: [JoinableThread] = []

    /// Greets `socket` with `greet` on a new thread (or closes it when `limit` greetings are under way).
    func start(_ socket: Socket, from address: String, _ greet: @escaping @Sendable () -> (Int, Int, TCPMesh.Channel)?) {
        condition.lock()
        defer { condition.unlock() }
        guard inFlight.count < Self.limit else {
            Log.warning("connection from \(address) closed: \(Self.limit) connections are already saying hello")
            socket.close()
            return
        }
        let key = ObjectIdentifier(socket)
        inFlight[key] = socket
        // Greeters that returned are let go as new ones start: a stranger's refused connections are closed
        // as they are refused, not kept (with a descriptor each) until the mesh is whole.
        threads.removeAll { $0.join(until: .after(seconds: 0)) }
        threads.append(
            JoinableThread(name: "tandem-greet", stackBytes: 256 << 10) { [self] in
                let result = greet()
                condition.lock()
                inFlight[key] = nil
                if let (peer, stream, channel) = result { greeted.append((socket, address, peer, stream, channel)) } else { socket.close() }
                condition.unlock()
            })
    }

    /// The connections greeted since the last call.
    func takeGreeted() -> [(Socket, String, Int, Int, TCPMesh.Channel)] {
        condition.lock()
        defer { condition.unlock() }
        let taken = greeted
        greeted.removeAll()
        return taken
    }

    /// Cuts off the greetings still waiting for a hello, waits for every greeter to return, and lets go of
    /// them (their closures hold this object and the sockets they greeted: kept, they would keep every
    /// connection of the group open after its shutdown).
    func cancelAndJoin() {
        condition.lock()
        for socket in inFlight.values { socket.shutdownBoth() }
        let all = threads
        threads.removeAll()
        condition.unlock()
        for thread in all { thread.join() }
        condition.lock()
        greeted.removeAll()
        condition.unlock()
    }
}
