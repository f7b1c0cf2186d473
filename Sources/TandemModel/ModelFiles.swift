import Foundation
import TandemTensor
import TandemTokenizer

/// What `--model` names: a Hugging Face checkpoint directory (`config.json`, `tokenizer.json`,
/// `*.safetensors`) or a GGUF file, which holds all three (`GGUFCheckpoint`). The one place that tells them
/// apart; everything that reads a model's parts asks here.
public enum ModelFiles {
    /// Whether `model` is a file (read as GGUF) rather than a checkpoint directory.
    public static func isGGUF(_ model: String) -> Bool {
        var isDirectory: ObjCBool = false
        return FileManager.default.fileExists(atPath: model, isDirectory: &isDirectory) && !isDirectory.boolValue
    }

    /// The model's architecture: config.json, or the GGUF file's metadata.
    public static func config(_ model: String) throws(ModelLoadError) -> ModelConfig {
        isGGUF(model) ? try GGUFCheckpoint(path: model).config : try ModelConfig(directory: model)
    }

    /// The model's architecture, and the blocks its layers are stored in (a GGUF file's quantized layers, the
    /// largest block of them; nil for a directory or float tensors), from one reading of the file.
    public static func configAndStoredBlocks(_ model: String) throws(ModelLoadError) -> (config: ModelConfig, storedBlocks: WeightQuantization?) {
        guard isGGUF(model) else { return (try ModelConfig(directory: model), nil) }  // not the safetensors headers `open` reads
        let files = try open(model)
        return (files.config, files.storedBlocks)
    }

    /// A model opened once for loading: its config, its tensors, and (from the same reading of a GGUF file) its
    /// tokenizer and stored blocks — so a rank parses a GGUF file's header, with its vocabulary, once.
    public struct Opened: Sendable {
        /// The directory or file.
        public let path: String
        /// The model's architecture.
        public let config: ModelConfig
        /// The model's tensors by Hugging Face name.
        public let weights: any WeightStore

        /// The blocks the decoder layers are stored in (a GGUF file's quantized layers, the largest block of them;
        /// nil for a directory or float tensors).
        public var storedBlocks: WeightQuantization? { (weights as? GGUFCheckpoint)?.layerBlocks }

        /// The model's tokenizer (see `ModelFiles.tokenizer`).
        ///
        /// - Throws: `TokenizerError` (or a file error reading tokenizer.json).
        public func tokenizer() throws -> BytePairTokenizer {
            if let gguf = weights as? GGUFCheckpoint { return try gguf.file.tokenizer() }  // the file already read
            return try ModelFiles.tokenizer(path)
        }
    }

    /// Opens `model`: a GGUF file read and checked once, or a directory's config.json and safetensors headers.
    public static func open(_ model: String) throws(ModelLoadError) -> Opened {
        if isGGUF(model) {
            let file = try GGUFCheckpoint(path: model)
            return Opened(path: model, config: file.config, weights: file)
        }
        return Opened(path: model, config: try ModelConfig(directory: model), weights: try Checkpoint(directory: model))
    }

    /// The model's tokenizer: tokenizer.json (with tokenizer_config.json), or the GGUF file's `tokenizer.ggml.*`.
    ///
    /// - Throws: `TokenizerError`, or `ModelLoadError` for a GGUF file that cannot be read.
    public static func tokenizer(_ model: String) throws -> BytePairTokenizer {
        isGGUF(model) ? try GGUFFile(path: model).tokenizer() : try BytePairTokenizer(directory: model)
    }

    /// End-of-sequence ids besides the config's: generation_config.json's `eos_token_id` (an id or a list) in a
    /// directory; none more for a GGUF file (its config already holds every end-of-generation id).
    public static func generationEOS(_ model: String) throws(ModelLoadError) -> [Int] {
        guard !isGGUF(model) else { return [] }
        let path = (model as NSString).appendingPathComponent("generation_config.json")
        guard let data = FileManager.default.contents(atPath: path) else { return [] }
        guard let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw .malformed(path: path, detail: "not a JSON object")
        }
        let value = json["eos_token_id"]
        if value == nil || value is NSNull { return [] }
        if let id = value as? Int { return [id] }
        if let ids = value as? [Int] { return ids }
        throw .malformed(path: path, detail: "eos_token_id must be a token id or a list of them")
    }
}
