/// Turns a stream of token ids into text as it arrives, never emitting a broken UTF-8 sequence: bytes of a
/// character still incomplete wait for the next token. The concatenation of everything it emits equals
/// `decode` of all the ids.
public struct IncrementalDetokenizer {
    private let tokenizer: any Tokenizer
    private let skipSpecialTokens: Bool
    private var pending: [UInt8] = []

    /// A stream over `tokenizer`'s ids; special tokens add no text when `skipSpecialTokens`.
    public init(tokenizer: any Tokenizer, skipSpecialTokens: Bool = true) {
        self.tokenizer = tokenizer
        self.skipSpecialTokens = skipSpecialTokens
    }

    /// The text that `id` completes (possibly empty).
    public mutating func append(_ id: Int) -> String {
        if skipSpecialTokens && tokenizer.isSpecial(id) { return "" }
        pending += tokenizer.bytes(of: id)
        let ready = pending.count - Self.incompleteTail(pending)
        guard ready > 0 else { return "" }
        let text = String(decoding: pending[..<ready], as: UTF8.self)
        pending.removeFirst(ready)
        return text
    }

    /// What is left (an incomplete character becomes U+FFFD).
    public mutating func finish() -> String {
        defer { pending.removeAll() }
        return String(decoding: pending, as: UTF8.self)
    }

    /// How many bytes at the end begin a UTF-8 sequence that more bytes could still complete. Decoding may
    /// stop right before them: the bytes before decode the same whatever follows.
    static func incompleteTail(_ bytes: [UInt8]) -> Int {
        var index = bytes.count - 1
        while index >= 0 && index >= bytes.count - 3 && bytes[index] & 0xC0 == 0x80 { index -= 1 }
        guard index >= 0 else { return 0 }
        let lead = bytes[index]
        let length = lead >= 0xF0 && lead <= 0xF4 ? 4 : lead >= 0xE0 && lead <= 0xEF ? 3 : lead >= 0xC2 && lead <= 0xDF ? 2 : 1
        let present = bytes.count - index
        return present < length ? present : 0
    }
}
