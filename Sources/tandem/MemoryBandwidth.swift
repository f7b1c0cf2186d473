import Foundation

/// Streaming read bandwidth of this machine, the roofline of decode: `streams` threads each sum a buffer of
/// their own (far larger than the caches), started together; the best of `repeats` passes.
enum MemoryBandwidth {
    /// Aggregate bytes per second over all streams.
    static func measure(streams: Int, bytesPerStream: Int = 256 << 20, repeats: Int = 7) -> Double {
        let count = bytesPerStream / MemoryLayout<Float>.size
        let buffers = (0..<streams).map { _ in
            let buffer = UnsafeMutablePointer<Float>.allocate(capacity: count)
            buffer.initialize(repeating: 1, count: count)
            return Int(bitPattern: buffer)
        }
        defer { for address in buffers { UnsafeMutablePointer<Float>(bitPattern: address)!.deallocate() } }
        var best = 0.0
        for _ in 0..<repeats {
            let start = DispatchTime.now().uptimeNanoseconds
            DispatchQueue.concurrentPerform(iterations: streams) { stream in
                blackHole(sum(UnsafePointer(bitPattern: buffers[stream])!, count: count))
            }
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            best = max(best, Double(bytesPerStream * streams) / seconds)
        }
        return best
    }

    /// Sum with four independent vector accumulators, so the loop is bound by loads, not additions.
    private static func sum(_ values: UnsafePointer<Float>, count: Int) -> Float {
        var accumulators = (SIMD8<Float>(), SIMD8<Float>(), SIMD8<Float>(), SIMD8<Float>())
        let raw = UnsafeRawPointer(values)
        var index = 0
        while index + 32 <= count {
            accumulators.0 += raw.loadUnaligned(fromByteOffset: index * 4, as: SIMD8<Float>.self)
            accumulators.1 += raw.loadUnaligned(fromByteOffset: (index + 8) * 4, as: SIMD8<Float>.self)
            accumulators.2 += raw.loadUnaligned(fromByteOffset: (index + 16) * 4, as: SIMD8<Float>.self)
            accumulators.3 += raw.loadUnaligned(fromByteOffset: (index + 24) * 4, as: SIMD8<Float>.self)
            index += 32
        }
        return (accumulators.0 + accumulators.1 + accumulators.2 + accumulators.3).sum()
    }

    @inline(never)
    private static func blackHole(_ value: Float) { if value == .infinity { print("") } }
}
