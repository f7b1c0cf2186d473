import Foundation
import TandemTensor

/// The text the embedded default's tokenizer is trained on: a few paragraphs of English, some code and
/// numbers, and a seeded stream of invented words (so that large vocabularies have enough distinct pairs to
/// merge). Deterministic: the same vocabulary on every machine.
enum TrainingCorpus {
    static let prose = [
        "Tandem splits a language model across processes and hosts. Each rank holds a slice of every weight, and the ranks talk to each other through collectives: all-reduce, all-gather, broadcast.",
        "A decoder layer normalises its input, projects it to queries, keys and values, rotates them by their position, attends over the cache of earlier keys, and projects the result back.",
        "Then a gated feed-forward block expands the hidden state, multiplies the gate by the up projection, and brings it back down to the model's width.",
        "The tokenizer turns text into numbers and numbers back into text. It never splits a character's bytes across a printed boundary, so a stream of tokens always shows whole letters.",
        "When the weights are larger than one machine's memory, the model is cut into pieces that fit. When one machine is too slow, several share the work of every token.",
        "Memory bandwidth bounds decoding: every generated token reads every weight once. Prefill is different; many tokens share each weight read, so it runs at the speed of matrix multiplication.",
        "The quick brown fox jumps over the lazy dog. Pack my box with five dozen liquor jugs. How vexingly quick daft zebras jump!",
        "It was a bright cold day, and the clocks were checking their deadlines. Nobody waited forever: a peer that vanished was named in the error within two seconds.",
        "Questions, answers, lists and tables: the model should see them all. Is it raining? No, it's sunny; we'll go outside, they'd said, and you're welcome to come.",
        "Numbers appear everywhere: 1, 2, 3, 10, 42, 100, 256, 1024, 4096, 65536, 3.14159, 2.71828, 1e-6, 2026-11-23, 12:30, 99%.",
    ]

    static let code = [
        "func forward(_ input: Tensor) throws -> Tensor {\n    let hidden = norm(input)\n    return input + attention(hidden)\n}\n",
        "for layer in layers {\n    hidden = try layer.forward(hidden, cache: cache)\n}\n",
        "def softmax(x):\n    e = np.exp(x - x.max())\n    return e / e.sum()\n",
        "if (rank == 0) { printf(\"%d tokens in %.2f s\\n\", count, seconds); }\n",
        "let config = try ModelConfig(directory: path)\nprint(config.hiddenSize, config.layerCount)\n",
    ]

    /// The prose and code paragraphs, joined: English text and code every make-model tokenizer knows.
    static var sample: String { (prose + code).joined(separator: "\n\n") }

    /// `prose` and `code` repeated, and `inventedWords` words in sentences of 6–14.
    static func texts(inventedWords: Int, seed: UInt64 = 0x5EED) -> [String] {
        var texts = Array(repeating: prose + code, count: 8).flatMap { $0 }
        var generator = SeededGenerator(seed: seed)
        let onsets = ["", "b", "br", "c", "ch", "d", "dr", "f", "g", "gl", "h", "j", "k", "l", "m", "n", "p", "pl", "qu", "r", "s", "sh", "st", "t", "th", "tr", "v", "w", "z"]
        let vowels = ["a", "e", "i", "o", "u", "ai", "ea", "ou", "y"]
        let codas = ["", "", "", "n", "r", "s", "t", "l", "m", "nd", "st", "ck"]
        func syllable() -> String {
            onsets.randomElement(using: &generator)! + vowels.randomElement(using: &generator)! + codas.randomElement(using: &generator)!
        }
        // A lexicon with a Zipf-like use: word i is drawn with weight ~ 1 / (i + 1).
        let lexicon = (0..<4000).map { _ in (0..<Int.random(in: 1...3, using: &generator)).map { _ in syllable() }.joined() }
        var sentence: [String] = []
        var length = 0
        for _ in 0..<inventedWords {
            let rank = Int(pow(Double(lexicon.count), Double.random(in: 0..<1, using: &generator))) - 1
            sentence.append(lexicon[rank])
            length += 1
            if length >= Int.random(in: 6...14, using: &generator) {
                sentence[0] = sentence[0].prefix(1).uppercased() + sentence[0].dropFirst()
                texts.append(sentence.joined(separator: " ") + [".", ".", ".", "?", "!", ","].randomElement(using: &generator)!)
                sentence.removeAll()
                length = 0
            }
        }
        return texts
    }
}
