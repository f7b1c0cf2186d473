/// One sequence's part of a forward pass: how many new tokens it brings, how many of its positions the cache
/// already holds, where its positions live, and whether the caller wants the logits of its last new token.
public struct ScheduledSequence: Sendable, Equatable, Codable {
    /// New tokens this pass (a prompt chunk, or one token when decoding).
    public var tokenCount: Int
    /// Positions already in the cache: the first new token is at this position.
    public var computedTokens: Int
    /// The sequence's cache blocks in position order, enough for `computedTokens + tokenCount` positions.
    public var blockTable: [Int32]
    /// Whether to compute logits for the last new token (false for a prompt chunk that is not the last).
    public var wantsLogits: Bool

    public init(tokenCount: Int, computedTokens: Int, blockTable: [Int32], wantsLogits: Bool) {
        self.tokenCount = tokenCount
        self.computedTokens = computedTokens
        self.blockTable = blockTable
        self.wantsLogits = wantsLogits
    }

    /// Positions in the cache once this pass has run.
    public var contextLength: Int { computedTokens + tokenCount }
}

/// The input of one forward pass over a paged cache: every sequence's new tokens, concatenated in order.
public struct ForwardBatch: Sendable, Equatable {
    /// The new tokens of every sequence, sequence after sequence.
    public var tokens: [Int]
    /// The sequences, in the order of their tokens.
    public var sequences: [ScheduledSequence]

    public init(tokens: [Int], sequences: [ScheduledSequence]) {
        self.tokens = tokens
        self.sequences = sequences
    }

    /// Logit rows the pass returns (sequences that want them).
    public var logitRows: Int { sequences.reduce(0) { $0 + ($1.wantsLogits ? 1 : 0) } }
}
