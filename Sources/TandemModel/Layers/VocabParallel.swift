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
    /// `[tokenRange.count, hiddenSize]` as stored: the checkpoint's numbers (in its dtype), or a GGUF file's
    /// blocks, never widened (a 128k-token Q4_K table is 0.28 GB, 2.1 GB in fp32) — a lookup dequantizes its row.
    private let table: Table
    private let group: TensorParallelGroup

    private enum Table {
        case dense(Tensor)
        case blocks(LinearWeight)
    }

    init(_ source: WeightSource, key: String, vocabularySize: Int, hiddenSize: Int, group: TensorParallelGroup) throws(ModelLoadError) {
        tokenRange = group.share(of: vocabularySize)
        let shape = [vocabularySize, hiddenSize]
        if case .blocks = try source.store.format(of: key) {
            table = .blocks(try source.linear([(key, shape, tokenRange)], columns: 0..<hiddenSize, name: key))
        } else {
            table = .dense(try source.load(key, shape: shape, slice: (0, tokenRange)))
        }
        self.vocabularySize = vocabularySize
        self.hiddenSize = hiddenSize
        self.group = group
    }

    /// Bytes of this rank's table.
    var byteCount: Int {
        switch table {
        case let .dense(weight): weight.byteCount
        case let .blocks(weight): weight.byteCount
        }
    }

    /// The table as a tied head multiplies it, sharing its storage: the blocks themselves, or the float table on
    /// the fp32 path (the lookup reads it as it is, so it is not repacked or quantized).
    func tiedHead(threads: Int) -> LinearWeight {
        switch table {
        case let .dense(weight): LinearWeight(weight, precision: .float32, threads: threads)
        case let .blocks(weight): weight
        }
    }

    /// Writes the embedding of each token into a row of `output` (`[tokens.count, hiddenSize]`, fp32).
    ///
    /// - Throws: `GenerationError.tokenOutOfVocabulary`, or `CommError` when the all-reduce fails.
    public func forward(_ tokens: [Int], into output: Tensor) throws {
        let found =
            switch table {
            case let .dense(weight):
                Embedding.lookup(tokens, weight: weight, firstToken: tokenRange.lowerBound, vocabularySize: vocabularySize, into: output)
            case let .blocks(weight):
                Embedding.lookup(tokens, rows: weight.outputSize, firstToken: tokenRange.lowerBound, vocabularySize: vocabularySize, into: output) {
                    weight.dequantizeRow($0, into: $1)
                }
            }
        guard found else {
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
