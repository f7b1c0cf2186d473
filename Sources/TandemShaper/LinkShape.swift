/// What each host's link does to the packets it sends: serialises them at `bitsPerSecond` (a packet leaves when
/// the one before it has left, as on a wire) and delivers each `delayNanoseconds` after its last bit left — the
/// shape `tc qdisc … netem rate R delay D` gives a link, for kernels without netem.
struct LinkShape: Sendable, Equatable {
    var bitsPerSecond: Double
    var delayNanoseconds: UInt64

    /// Nanoseconds `bytes` take on the wire.
    func serialization(bytes: Int) -> UInt64 {
        UInt64((Double(bytes) * 8 * 1e9 / bitsPerSecond).rounded(.up))
    }

    /// Parses a rate as `tc` writes one: a number and a unit of bit, kbit, mbit or gbit per second (`1gbit`,
    /// `100mbit`, `2.5gbit`); nil for anything else.
    static func rate(_ text: String) -> Double? {
        let units: [(String, Double)] = [("gbit", 1e9), ("mbit", 1e6), ("kbit", 1e3), ("bit", 1)]
        let lowered = text.lowercased()
        for (suffix, scale) in units where lowered.hasSuffix(suffix) {
            guard let value = Double(lowered.dropLast(suffix.count)), value.isFinite, value > 0 else { return nil }
            return value * scale
        }
        return nil
    }

    /// Parses a delay as `tc` writes one: a number and a unit of ns, us, ms or s (`200us`, `2ms`, `0ms`); nil for
    /// anything else.
    static func delay(_ text: String) -> UInt64? {
        let units: [(String, Double)] = [("ns", 1), ("us", 1e3), ("ms", 1e6), ("s", 1e9)]
        let lowered = text.lowercased()
        for (suffix, scale) in units where lowered.hasSuffix(suffix) {
            guard let value = Double(lowered.dropLast(suffix.count)), value.isFinite, value >= 0, value * scale < 60e9 else { return nil }
            return UInt64((value * scale).rounded())
        }
        return nil
    }
}
