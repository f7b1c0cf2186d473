import TandemComm
import TandemTensor

/// Token embeddings with the vocabulary split over the tensor-parallel group (vLLM's
/// `VocabParallelEmbedding`): each rank holds a contiguous block of rows, looks up the tokens in its block
/// (zero rows for the others), and the group's sum gives every token its row.
public final class VocabParallelEmbedding {
    /// Rows of the whole table (the model's vocab_size).
    public let vocabularySize: Int
    /// Columns (the hidden size).
    public let hiddenSize: Int
    /// This rank's block of token ids.
    public let tokenRange: Range<Int>
    /// `[tokenRange.count, hiddenSize]` in the checkpoint dtype (shared with a tied `ParallelLMHead`).
    let weight: Tensor
    private let group: TensorParallelGroup

    init(_ source: WeightSource, key: String, vocabularySize: Int, hiddenSize: Int, group: TensorParallelGroup) throws(ModelLoadError) {
        tokenRange = group.share(of: vocabularySize)
        weight = try source.load(key, shape: [vocabularySize, hiddenSize], slice: (0, tokenRange))
        self.vocabularySize = vocabularySize
        self.hiddenSize = hiddenSize
        self.group = group
    }

    /// Writes the embedding of each token into a row of `output` (`[tokens.count, hiddenSize]`, fp32).
    ///
    /// - Throws: `GenerationError.tokenOutOfVocabulary`, or `CommError` when the all-reduce fails.
    public func forward(_ tokens: [Int], into output: Tensor) throws {
        guard Embedding.lookup(tokens, weight: weight, firstToken: tokenRange.lowerBound, vocabularySize: vocabularySize, into: output) else {
            let bad = tokens.first { !(0..<vocabularySize).contains($0) }!
            throw GenerationError.tokenOutOfVocabulary(token: bad, vocabularySize: vocabularySize)
        }
        try group.allReduce(output)
    }
}

/// The output projection to vocabulary logits with the vocabulary split like `VocabParallelEmbedding` (vLLM's
/// `ParallelLMHead`): each rank computes the logits of its block, and the blocks are gathered to the rank that
/// samples.
public final class ParallelLMHead {
    /// Logits per row (the model's vocab_size).
    public let vocabularySize: Int
    private let weight: LinearWeight
    private let rowsPerRank: Int
    private let group: TensorParallelGroup

    /// `lm_head.weight`'s block, or the embedding's block when the checkpoint ties them.
    init(weight: LinearWeight, vocabularySize: Int, group: TensorParallelGroup) {
        self.weight = weight
        self.vocabularySize = vocabularySize
        rowsPerRank = weight.outputSize
        self.group = group
    }

    /// Logits `[m, vocabularySize]` of `hidden` (`[m, hiddenSize]`, fp32), gathered on group rank `root` (nil on
    /// the other ranks).
    ///
    /// - Throws: `CommError` when the gather fails.
    public func forward(_ hidden: Tensor, gatherTo root: Int) throws(CommError) -> Tensor? {
        let local = Tensor(zeros: [hidden.shape[0], rowsPerRank], dtype: .float32)
        weight.apply(hidden, into: local)
        return try group.gatherColumns(local, total: vocabularySize, to: root)
    }
}
