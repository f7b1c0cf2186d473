import TandemTensor

/// The benchmarks' random prompts: token ids drawn from a seeded generator below the last two ids of the
/// vocabulary (kept clear of special tokens at its end). `bench throughput` and `bench serve` draw the same
/// prompts for the same seed and vocabulary, so the engine alone and the server can be compared on the same
/// requests.
struct RandomPrompts {
    private var generator: SeededGenerator
    private let ordinary: Int

    init(seed: UInt64, vocabularySize: Int) {
        generator = SeededGenerator(seed: seed)
        ordinary = max(vocabularySize - 2, 1)
    }

    /// `count` random token ids.
    mutating func tokens(_ count: Int) -> [Int] { (0..<count).map { _ in Int.random(in: 0..<ordinary, using: &generator) } }

    /// `count` prompts of `length` tokens, each starting with one shared random prefix of `prefixLength`.
    mutating func prompts(_ count: Int, length: Int, prefixLength: Int = 0) -> [[Int]] {
        let prefix = tokens(prefixLength)
        return (0..<count).map { _ in prefix + tokens(length - prefixLength) }
    }
}
