import CTandemSystem
import Glibc

/// One host's interface on the shaped network: a TUN device inside the host's namespace. Its reader thread takes
/// the packets the host sends, serialises them at the link's rate (dropping what would wait longer than the queue
/// allows, as a full router queue does) and hands each to the destination host's queue, due one delay after it left;
/// its delivery thread writes the packets due to this host into its device.
final class HostPort: @unchecked Sendable {
    let name: String
    let address: UInt32
    let descriptor: Int32
    let queue = DeliveryQueue()
    private let lock = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private var counters = Counters()

    /// What a port counted; read with `snapshot()`.
    struct Counters {
        var sentPackets = 0, sentBytes = 0, dropped = 0, unroutable = 0
        var deliveredPackets = 0, deliveredBytes = 0
        /// Sum and maximum of how late packets were handed to the device past their due time (ns; early ones count 0).
        var lateSum: UInt64 = 0, lateMax: UInt64 = 0
    }

    init(name: String, address: UInt32, descriptor: Int32) {
        self.name = name
        self.address = address
        self.descriptor = descriptor
        pthread_mutex_init(lock, nil)
    }

    func snapshot() -> Counters {
        pthread_mutex_lock(lock)
        defer { pthread_mutex_unlock(lock) }
        return counters
    }

    private func count(_ update: (inout Counters) -> Void) {
        pthread_mutex_lock(lock)
        update(&counters)
        pthread_mutex_unlock(lock)
    }

    /// Reads this host's packets forever, routing IPv4 packets by destination address to `routes`; anything else
    /// (IPv6 neighbour discovery, an address no host has) is counted and dropped. Exits the process, naming the
    /// device, if it can no longer read.
    func forward(routes: [UInt32: HostPort], shape: LinkShape, queueNanoseconds: UInt64, mtu: Int) -> Never {
        var buffer = [UInt8](repeating: 0, count: mtu + 128)
        var wireFree: UInt64 = 0
        while true {
            let length = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            if length < 0 {
                if errno == EINTR || errno == EAGAIN { continue }
                Shaper.fail("reading \(name): \(String(cString: strerror(errno)))")
            }
            guard length >= 20, buffer[0] >> 4 == 4 else {
                count { $0.unroutable += 1 }
                continue
            }
            let destination = UInt32(buffer[16]) << 24 | UInt32(buffer[17]) << 16 | UInt32(buffer[18]) << 8 | UInt32(buffer[19])
            guard let target = routes[destination], target !== self else {
                count { $0.unroutable += 1 }
                continue
            }
            let now = Clock.now()
            let start = max(now, wireFree)
            if start - now > queueNanoseconds {
                count { $0.dropped += 1 }
                continue
            }
            wireFree = start + shape.serialization(bytes: length)
            target.queue.push(Packet(bytes: Array(buffer[0..<length]), due: wireFree + shape.delayNanoseconds))
            count {
                $0.sentPackets += 1
                $0.sentBytes += length
            }
        }
    }

    /// Writes the packets due to this host into its device forever. A packet is never handed over before it is due;
    /// the kernel's wake-up latency makes it later (counted, and printed at the end).
    func deliver() -> Never {
        _ = tandem_set_timer_slack(1)
        while true {
            let packets = queue.takeDue()
            for packet in packets {
                let now = Clock.now()
                let late = now > packet.due ? now - packet.due : 0
                let written = packet.bytes.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
                count {
                    if written == packet.bytes.count {
                        $0.deliveredPackets += 1
                        $0.deliveredBytes += packet.bytes.count
                    } else {
                        $0.dropped += 1
                    }
                    $0.lateSum += late
                    $0.lateMax = max($0.lateMax, late)
                }
            }
        }
    }
}
