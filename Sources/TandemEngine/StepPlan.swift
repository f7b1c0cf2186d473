import TandemModel

/// What the driver sends every worker each step through the broadcast queue: the whole forward batch (each
/// scheduled sequence's new token ids, cached positions, block table, whether it wants logits), the order to
/// report each rank's compute time, or the order to stop. Workers keep no request state: a plan is all they need for a step, so a preempted or aborted request
/// costs them nothing.
///
/// Encoded as little-endian 32-bit words (no JSON on the step path): a magic word, the kind, then for a step the
/// sequence count, per sequence (tokens, cached, wants logits, blocks, block ids…), and the tokens.
public enum StepPlan: Equatable, Sendable {
    /// Run this batch.
    case step(ForwardBatch)
    /// Leave the worker loop.
    case shutdown
    /// Join an all-gather of each rank's counters (`LLM.countersPerRank`).
    case reportCounters

    private static let magic: Int32 = 0x5444_5350  // "TDSP"

    /// The plan as bytes for the broadcast queue.
    public func encoded() -> [UInt8] {
        var words: [Int32] = [Self.magic]
        switch self {
        case .shutdown:
            words.append(0)
        case .reportCounters:
            words.append(2)
        case let .step(batch):
            words.append(1)
            words.append(Int32(batch.sequences.count))
            for sequence in batch.sequences {
                words += [Int32(sequence.tokenCount), Int32(sequence.computedTokens), sequence.wantsLogits ? 1 : 0, Int32(sequence.blockTable.count)]
                words += sequence.blockTable
            }
            words += batch.tokens.map { Int32(truncatingIfNeeded: $0) }
        }
        return words.withUnsafeBytes { Array($0) }
    }

    /// - Throws: `EngineError.malformedPlan` naming what does not add up.
    public init(decoding bytes: [UInt8]) throws(EngineError) {
        guard bytes.count % 4 == 0, bytes.count >= 8 else { throw .malformedPlan("\(bytes.count) bytes is not a plan") }
        let words = bytes.withUnsafeBytes { raw in (0..<(bytes.count / 4)).map { raw.loadUnaligned(fromByteOffset: $0 * 4, as: Int32.self) } }
        guard words[0] == Self.magic else { throw .malformedPlan("bad magic \(words[0])") }
        var cursor = 2
        func next() throws(EngineError) -> Int {
            guard cursor < words.count else { throw .malformedPlan("ends after \(words.count) words") }
            defer { cursor += 1 }
            return Int(words[cursor])
        }
        switch words[1] {
        case 0:
            guard words.count == 2 else { throw .malformedPlan("a shutdown of \(words.count) words") }
            self = .shutdown
        case 1:
            let count = try next()
            guard count >= 0, count <= words.count else { throw .malformedPlan("\(count) sequences") }
            var sequences: [ScheduledSequence] = []
            for _ in 0..<count {
                let (tokens, computed, wants, blocks) = (try next(), try next(), try next(), try next())
                guard tokens > 0, computed >= 0, wants == 0 || wants == 1, blocks >= 0, cursor + blocks <= words.count else {
                    throw .malformedPlan("sequence with \(tokens) tokens, \(computed) cached, wants-logits word \(wants), \(blocks) blocks")
                }
                sequences.append(
                    ScheduledSequence(tokenCount: tokens, computedTokens: computed, blockTable: Array(words[cursor..<(cursor + blocks)]), wantsLogits: wants != 0))
                cursor += blocks
            }
            let tokens = words[cursor...].map { Int($0) }
            guard tokens.count == sequences.reduce(0, { $0 + $1.tokenCount }) else {
                throw .malformedPlan("\(tokens.count) tokens for sequences that bring \(sequences.reduce(0) { $0 + $1.tokenCount })")
            }
            self = .step(ForwardBatch(tokens: tokens, sequences: sequences))
        case 2:
            guard words.count == 2 else { throw .malformedPlan("a counters report of \(words.count) words") }
            self = .reportCounters
        default:
            throw .malformedPlan("unknown kind \(words[1])")
        }
    }
}
