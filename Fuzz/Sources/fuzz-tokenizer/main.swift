// tokenizer.json: refused with a `TokenizerError`, or a tokenizer that encodes and decodes text without a
// crash, giving ids inside its vocabulary. The text is the input's own bytes after the JSON (split at the first
// NUL byte), so the fuzzer varies both.
import Foundation
import FuzzSupport
import TandemTokenizer

fuzzerMain { input in
    let split = input.firstIndex(of: 0) ?? input.count
    guard let json = try? JSONSerialization.jsonObject(with: Data(input[0..<split])) as? [String: Any],
        let tokenizer = try? BytePairTokenizer(json: json, path: "tokenizer.json")
    else { return }
    let text = String(decoding: input[min(split + 1, input.count)...], as: UTF8.self)
    guard let ids = try? tokenizer.encode(text, addSpecialTokens: true) else { return }
    precondition(ids.allSatisfy { $0 >= 0 && $0 < tokenizer.size }, "id outside the vocabulary")
    _ = tokenizer.decode(ids, skipSpecialTokens: false)
    _ = tokenizer.decode(ids, skipSpecialTokens: true)
}
