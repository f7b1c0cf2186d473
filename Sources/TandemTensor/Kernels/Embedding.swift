/// Token embedding lookup, with the masking a vocabulary-parallel shard needs.
public enum Embedding {
    /// Writes the embedding of each token in `tokens` into a row of `output` (`[tokens.count, hidden]`, fp32).
    ///
    /// `weight` (`[rows, hidden]`, any float dtype) holds the vocabulary entries `firstToken ..< firstToken +
    /// rows` — the whole vocabulary, or one rank's shard of it; a token outside that range gets a zero row,
    /// so summing the shards' outputs over the tensor-parallel group gives every row once.
    ///
    /// - Returns: false when some token is outside `0 ..< vocabularySize` (the caller reports it).
    public static func lookup(
        _ tokens: [Int], weight: Tensor, firstToken: Int = 0, vocabularySize: Int, into output: Tensor
    ) -> Bool {
        precondition(weight.rank == 2, "lookup takes a [rows, hidden] weight")
        let hidden = weight.shape[1]
        return lookup(tokens, rows: weight.shape[0], firstToken: firstToken, vocabularySize: vocabularySize, into: output) { local, row in
            weight.copyFloats(from: local * hidden, count: hidden, into: row)
        }
    }

    /// `lookup` over a table of `rows` entries that `copyRow(local, target)` writes as fp32 (a quantized table
    /// dequantizes the one row).
    public static func lookup(
        _ tokens: [Int], rows: Int, firstToken: Int = 0, vocabularySize: Int, into output: Tensor, copyRow: (Int, UnsafeMutablePointer<Float>) -> Void
    ) -> Bool {
        precondition(output.rank == 2 && output.dtype == .float32 && output.shape[0] == tokens.count, "output \(output.shape) must be [\(tokens.count), hidden] float32")
        let hidden = output.shape[1]
        let target = output.baseAddress.assumingMemoryBound(to: Float.self)
        var valid = true
        for (index, token) in tokens.enumerated() {
            let row = target + index * hidden
            guard (0..<vocabularySize).contains(token) else {
                valid = false
                row.update(repeating: 0, count: hidden)
                continue
            }
            let local = token - firstToken
            guard (0..<rows).contains(local) else {
                row.update(repeating: 0, count: hidden)
                continue
            }
            copyRow(local, row)
        }
        return valid
    }
}
