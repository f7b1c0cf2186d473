/// Text ↔ token ids for a model.
public protocol Tokenizer: Sendable {
    /// The token ids of `text`; with `addSpecialTokens`, the special tokens the tokenizer puts around a
    /// sequence (a beginning-of-sequence token) are added.
    func encode(_ text: String, addSpecialTokens: Bool) throws(TokenizerError) -> [Int]
    /// The text of `ids`; bytes that do not form UTF-8 become U+FFFD. Ids outside the vocabulary decode to
    /// nothing (as in `tokenizers`).
    func decode(_ ids: [Int], skipSpecialTokens: Bool) -> String
    /// The bytes token `id` stands for (empty outside the vocabulary) — what streaming decodes.
    func bytes(of id: Int) -> [UInt8]
    /// Whether `id` is a special token (skipped by `decode(_:skipSpecialTokens: true)`).
    func isSpecial(_ id: Int) -> Bool
    /// The id of a token string, if it is in the vocabulary.
    func id(of token: String) -> Int?
    /// The number of ids (one past the largest).
    var size: Int { get }
}
