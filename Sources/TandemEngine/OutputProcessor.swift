import TandemModel
import TandemTokenizer

/// Turns one request's sampled tokens into text and decides when it ends (vLLM's detokenizer and stop
/// checker): end-of-sequence and stop token ids (kept in the ids, their text not), stop strings (text cut
/// before the earliest), `maxTokens`, and a full context. Streaming text holds back what a stop string could
/// still claim, so the deltas always add up to the final text.
final class OutputProcessor {
    let prompt: String
    private let params: SamplingParams
    private let stopIDs: Set<Int>
    private let contextLimit: Int
    private let promptCount: Int
    /// Scalars in the longest stop string (0 without stop strings).
    private let longestStop: Int
    private var detokenizer: IncrementalDetokenizer
    private(set) var tokenIDs: [Int] = []
    private(set) var text = ""
    private(set) var finishReason: FinishReason?
    /// Unicode scalars of `text` already handed to a stream (scalars, not characters: a combining mark arriving
    /// later joins the previous character without changing the count of what was sent).
    private var streamed = 0

    /// - Parameters:
    ///   - eosTokenIDs: the model's end-of-sequence ids (ignored with `ignoreEOS`).
    ///   - contextLimit: the model's context; the request ends when prompt + output fill it.
    init(prompt: String, promptCount: Int, params: SamplingParams, tokenizer: any Tokenizer, eosTokenIDs: Set<Int>, contextLimit: Int) {
        self.prompt = prompt
        self.params = params
        self.promptCount = promptCount
        self.contextLimit = contextLimit
        var stopIDs = Set(params.stopTokenIDs)
        if !params.ignoreEOS { stopIDs.formUnion(eosTokenIDs) }
        self.stopIDs = stopIDs
        longestStop = params.stop.map(\.unicodeScalars.count).max() ?? 0
        detokenizer = IncrementalDetokenizer(tokenizer: tokenizer, skipSpecialTokens: params.skipSpecialTokens)
    }

    /// Takes a sampled token and decides whether the request ends.
    func accept(_ token: Int) {
        tokenIDs.append(token)
        if stopIDs.contains(token) {
            text += detokenizer.finish()
            finishReason = .stop
            return
        }
        // A stop string may begin in earlier text and end in this token's.
        let searchFrom = max(0, text.unicodeScalars.count - longestStop)
        text += detokenizer.append(token)
        if let cut = earliestStop(from: searchFrom) {
            text = String(text.unicodeScalars[..<cut])
            finishReason = .stop
        } else if tokenIDs.count >= params.maxTokens || promptCount + tokenIDs.count >= contextLimit {
            text += detokenizer.finish()
            finishReason = .length
        }
    }

    /// Ends the request early (aborted); its text so far stays.
    func abort() {
        if finishReason == nil { finishReason = .abort }
    }

    /// Where the first stop string in `text` begins, searching from scalar `offset`.
    private func earliestStop(from offset: Int) -> String.Index? {
        guard !params.stop.isEmpty else { return nil }
        let start = text.unicodeScalars.index(text.startIndex, offsetBy: offset)
        // Literal: code point for code point, as Python's str.find in vLLM (not canonical equivalence).
        return params.stop.compactMap { text.range(of: $0, options: .literal, range: start..<text.endIndex)?.lowerBound }.min()
    }

    /// The text not yet streamed that no stop string can still cut: all of it once finished, else all but the
    /// last (longest stop string − 1) scalars.
    func takeReadyText() -> String {
        let holdBack = finishReason == nil ? max(longestStop - 1, 0) : 0
        let ready = max(text.unicodeScalars.count - holdBack, streamed)
        defer { streamed = ready }
        var piece = String.UnicodeScalarView()
        piece.append(contentsOf: text.unicodeScalars.dropFirst(streamed).prefix(ready - streamed))
        return String(piece)
    }
}
