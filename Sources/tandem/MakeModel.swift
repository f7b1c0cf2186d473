import ArgumentParser
import Foundation
import TandemModel
import TandemTensor

/// `tandem make-model`: the embedded default checkpoint.
struct MakeModel: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "make-model",
        abstract: "Write a deterministic random Llama checkpoint in the Hugging Face layout (for tests and benchmarks).",
        discussion: """
            tiny: 2 layers, width 64, 512 tokens (tests). small: 12 layers, width 1024, 4096 tokens, ~148 M parameters \
            (decode-speed measurements). The tokenizer is a byte-level BPE trained on a built-in corpus.
            """)

    @Option(help: "The directory to write (created if missing).")
    var out: String

    @Option(help: "tiny or small.")
    var preset: String = "tiny"

    @Option(help: "bfloat16, float16 or float32.")
    var dtype: String = "bfloat16"

    @Option(help: "Seed of the random weights.")
    var seed: UInt64 = 0

    func validate() throws {
        guard ModelPreset.all.contains(where: { $0.name == preset }) else {
            throw ValidationError("--preset must be one of \(ModelPreset.all.map(\.name).joined(separator: ", ")), got \(preset)")
        }
        guard let type = DType(name: dtype), type.isFloatingPoint else {
            throw ValidationError("--dtype must be bfloat16, float16 or float32, got \(dtype)")
        }
    }

    func run() throws {
        let chosen = ModelPreset.all.first { $0.name == preset }!
        try ModelWriter.write(chosen, dtype: DType(name: dtype)!, seed: seed, to: out)
        print("wrote \(out): preset \(chosen.name), \(chosen.parameterCount) parameters, \(dtype)")
    }
}
