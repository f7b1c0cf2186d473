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
            tiny: 2 layers, width 64, a vocabulary of 512 (tests). small: 12 layers, width 1024, a vocabulary of 4,096, \
            ~148 M parameters (decode-speed measurements). 1b: Llama 3.2 1B's layer shape, 17 layers, ~1.05 B parameters. \
            tiny-moe, small-moe: Mixtral's shape. The tokenizer is a byte-level BPE trained on a built-in corpus.
            """)

    @Option(help: "The directory to write (created if missing).")
    var out: String

    @Option(help: "tiny, small, 1b, tiny-moe or small-moe (Mixtral: 8 experts per layer, 2 per token).")
    var preset: String = "tiny"

    @Option(help: "bfloat16, float16 or float32.")
    var dtype: String = "bfloat16"

    @Option(help: "Seed of the random weights.")
    var seed: UInt64 = 0

    @Option(help: "Decoder layers, in place of the preset's (e.g. enough for --pp stages).")
    var layers: Int?

    @Option(help: "Also write the checkpoint as DIR/model-TYPE.gguf, its weights in TYPE (f32, f16, bf16, q8_0, q4_0, q4_k, q6_k), as llama.cpp's converter and llama-quantize (--pure) would.")
    var gguf: String?

    @Flag(help: "Write into a directory that already holds files (those of the same name are replaced).")
    var force = false

    func validate() throws {
        guard ModelPreset.all.contains(where: { $0.name == preset }) else {
            throw ValidationError("--preset must be one of \(ModelPreset.all.map(\.name).joined(separator: ", ")), got \(preset)")
        }
        guard let type = DType(name: dtype), type.isFloatingPoint else {
            throw ValidationError("--dtype must be bfloat16, float16 or float32, got \(dtype)")
        }
        if let layers, !(1...1024).contains(layers) { throw ValidationError("--layers must be in 1...1024, got \(layers)") }
        if let gguf, ggufType == nil {
            throw ValidationError("--gguf must be one of \(GGUFExport.types.map { $0.description.lowercased() }.joined(separator: ", ")), got \(gguf)")
        }
    }

    func run() throws {
        var chosen = ModelPreset.all.first { $0.name == preset }!
        if let layers { chosen.layerCount = layers }
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: out, isDirectory: &isDirectory) {
            guard isDirectory.boolValue else { throw CommandFailure("--out \(out) is a file, not a directory") }
            let entries = (try? FileManager.default.contentsOfDirectory(atPath: out)) ?? []
            guard entries.isEmpty || force else {
                throw CommandFailure("--out \(out) already holds \(entries.count) file(s); give another directory, or --force to write over them")
            }
        }
        // The nearest existing ancestor must be a directory this process may write into.
        var ancestor = (URL(fileURLWithPath: out).standardizedFileURL.path as NSString).deletingLastPathComponent
        while !FileManager.default.fileExists(atPath: ancestor, isDirectory: &isDirectory) { ancestor = (ancestor as NSString).deletingLastPathComponent }
        if !FileManager.default.fileExists(atPath: out) {
            guard isDirectory.boolValue else { throw CommandFailure("cannot create --out \(out): \(ancestor) is a file, not a directory") }
            guard access(ancestor, W_OK) == 0 else { throw CommandFailure("cannot create --out \(out): \(ancestor) is not writable (\(String(cString: strerror(errno))))") }
        }
        do {
            try ModelWriter.write(chosen, dtype: DType(name: dtype)!, seed: seed, to: out)
        } catch let error as CocoaError {
            // Foundation's own text is "NSCocoaErrorDomain Code=513 …"; say what failed and the system's reason.
            let reason = (error.userInfo[NSUnderlyingErrorKey] as? NSError).map { String(cString: strerror(Int32($0.code))) } ?? Self.reason(error.code)
            throw CommandFailure("cannot write the checkpoint to \(error.filePath ?? out): \(reason)")
        }
        print("wrote \(out): preset \(chosen.name), \(chosen.parameterCount) parameters, \(dtype)")
        if let type = ggufType {
            let file = (out as NSString).appendingPathComponent("model-\(type.description.lowercased()).gguf")
            do {
                try GGUFExport.write(checkpoint: out, type: type, to: file)
            } catch let error as ModelLoadError {
                throw CommandFailure("\(error)")
            } catch {
                throw CommandFailure("cannot write \(file): \(error.localizedDescription)")
            }
            print("wrote \(file): \(type)")
        }
    }

    private var ggufType: GGMLType? { gguf.flatMap { name in GGUFExport.types.first { $0.description.lowercased() == name.lowercased() } } }

    /// What a Foundation file error code means, in the words `strerror` would use.
    private static func reason(_ code: CocoaError.Code) -> String {
        switch code {
        case .fileNoSuchFile, .fileReadNoSuchFile: "no such file or directory"
        case .fileWriteNoPermission, .fileReadNoPermission: "permission denied"
        case .fileWriteOutOfSpace: "no space left on device"
        case .fileWriteVolumeReadOnly: "read-only file system"
        case .fileWriteFileExists: "a file is in the way"
        case .fileWriteUnknown: "it could not be created"
        default: "error \(code.rawValue)"
        }
    }
}
