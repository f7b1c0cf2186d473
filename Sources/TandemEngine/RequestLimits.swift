import TandemModel
import TandemTensor

/// What a request must fit to ever run on an engine: the vocabulary, the context and the KV pool. A value, so
/// any thread may check against it, and it outlives the model it was read from (`LLMEngine` checks new requests
/// against it while it restarts its ranks).
public struct RequestLimits: Sendable, Equatable {
    public var vocabularySize: Int
    /// The model's context (`max_position_embeddings`).
    public var maxPositions: Int
    /// The KV blocks' shape, and how many the pool has.
    public var layout: PagedKVLayout
    public var blockCount: Int

    public init(vocabularySize: Int, maxPositions: Int, layout: PagedKVLayout, blockCount: Int) {
        (self.vocabularySize, self.maxPositions, self.layout, self.blockCount) = (vocabularySize, maxPositions, layout, blockCount)
    }

    /// Checks that a request can ever run: its parameters, its tokens, its length against the context and its
    /// blocks against the whole pool. Every rank of a group gives the same answer.
    ///
    /// - Throws: `GenerationError` for bad parameters, an empty prompt or a token outside the vocabulary;
    ///   `EngineError.requestTooLarge` with the numbers.
    public func check(id: String, promptTokenIDs: [Int], params: SamplingParams) throws {
        try params.validate()
        guard !promptTokenIDs.isEmpty else { throw GenerationError.invalidRequest("the prompt of request \(id) encodes to no tokens") }
        if let bad = promptTokenIDs.first(where: { !(0..<vocabularySize).contains($0) }) {
            throw GenerationError.tokenOutOfVocabulary(token: bad, vocabularySize: vocabularySize)
        }
        if let bad = params.stopTokenIDs.first(where: { $0 >= vocabularySize }) {
            throw GenerationError.invalidRequest(
                "stop token id \(bad) of request \(id) is outside the vocabulary (0..<\(vocabularySize)); it could never be generated")
        }
        guard params.maxTokens < maxPositions else {
            throw GenerationError.invalidRequest(
                "max_tokens \(params.maxTokens) of request \(id) is not below the model's context of \(maxPositions) positions "
                    + "(max_position_embeddings); a completion stops when prompt and output fill the context")
        }
        guard promptTokenIDs.count < maxPositions else {
            throw EngineError.requestTooLarge(
                id: id, "its prompt has \(promptTokenIDs.count) tokens; the model's context is \(maxPositions) (max_position_embeddings)")
        }
        let positions = min(promptTokenIDs.count + params.maxTokens, maxPositions)
        let needed = layout.blocks(holding: positions)
        guard needed <= blockCount else {
            throw EngineError.requestTooLarge(
                id: id,
                "\(promptTokenIDs.count) prompt + up to \(params.maxTokens) new tokens need \(needed) KV blocks of \(layout.blockSize) positions; "
                    + "the pool has \(blockCount) (give more --kv-cache-memory or fewer max_tokens)")
        }
    }
}
