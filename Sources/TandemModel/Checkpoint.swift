import Foundation
import TandemTensor

/// The weights of a Hugging Face checkpoint directory: `model.safetensors`, or the shards named by
/// `model.safetensors.index.json`, every one memory-mapped and validated when opened.
///
/// With an index the match is strict both ways: every key of the index must be in the file it names, and every
/// tensor of a shard must be in the index, pointing at that shard.
public final class Checkpoint: WeightStore {
    /// The directory.
    public let directory: String
    /// Open shards by file name.
    private let files: [String: SafetensorsFile]
    /// The shard holding each tensor.
    private let location: [String: String]

    static let singleFile = "model.safetensors"
    static let indexFile = "model.safetensors.index.json"

    /// Opens the checkpoint in `directory`.
    ///
    /// - Throws: `ModelLoadError` naming the file (and key) at fault.
    public init(directory: String) throws(ModelLoadError) {
        self.directory = directory
        let index = (directory as NSString).appendingPathComponent(Self.indexFile)
        if FileManager.default.fileExists(atPath: index) {
            let weightMap = try Self.readIndex(index)
            var files: [String: SafetensorsFile] = [:]
            for name in Set(weightMap.values).sorted() {
                files[name] = try SafetensorsFile(path: (directory as NSString).appendingPathComponent(name))
            }
            for (key, name) in weightMap where files[name]?.tensors[key] == nil {
                throw .missingTensor(key: key, path: files[name]!.path)
            }
            for (name, file) in files {
                for key in file.tensors.keys where weightMap[key] != name {
                    throw .unexpectedTensor(key: key, path: file.path)
                }
            }
            self.files = files
            location = weightMap
            return
        }
        let single = (directory as NSString).appendingPathComponent(Self.singleFile)
        guard FileManager.default.fileExists(atPath: single) else {
            throw .missingFile(path: directory, detail: "no \(Self.singleFile) or \(Self.indexFile) in this directory")
        }
        let file = try SafetensorsFile(path: single)
        files = [Self.singleFile: file]
        location = Dictionary(uniqueKeysWithValues: file.tensors.keys.map { ($0, Self.singleFile) })
    }

    /// Every tensor name, sorted.
    public var keys: [String] { location.keys.sorted() }

    public var path: String { directory }

    public func shape(of key: String) throws(ModelLoadError) -> [Int] { try info(key).shape }

    public func format(of key: String) throws(ModelLoadError) -> StoredFormat { .dense(try info(key).dtype) }

    public func load(_ key: String, slice: (dim: Int, range: Range<Int>)?) throws(ModelLoadError) -> Tensor {
        guard let slice else { return try load(key) }
        return try load(key, dim: slice.dim, range: slice.range)
    }

    /// Safetensors holds no ggml blocks: always throws.
    public func blocks(_ key: String, rows: Range<Int>, columns: Range<Int>) throws(ModelLoadError) -> [UInt8] {
        throw .unsupportedDType(key: key, path: try file(for: key).path, dtype: "\(try info(key).dtype) (not ggml blocks)")
    }

    /// The dtype and shape of `key`.
    public func info(_ key: String) throws(ModelLoadError) -> TensorInfo {
        try file(for: key).info(key)
    }

    /// Tensor `key`, whole.
    public func load(_ key: String) throws(ModelLoadError) -> Tensor {
        try file(for: key).load(key)
    }

    /// Entries `range` of dimension `dim` of tensor `key` (see `SafetensorsFile.load(_:dim:range:)`).
    public func load(_ key: String, dim: Int, range: Range<Int>) throws(ModelLoadError) -> Tensor {
        try file(for: key).load(key, dim: dim, range: range)
    }

    /// Checks that `key` has `shape`, naming the shard that holds it.
    public func require(_ key: String, shape: [Int]) throws(ModelLoadError) {
        let file = try file(for: key)
        let info = try file.info(key)
        guard info.shape == shape else {
            throw .wrongShape(key: key, path: file.path, expected: "\(shape)", actual: "\(info.dtype)\(info.shape)")
        }
    }

    private func file(for key: String) throws(ModelLoadError) -> SafetensorsFile {
        guard let name = location[key], let file = files[name] else {
            throw .missingTensor(key: key, path: files.count == 1 ? files.values.first!.path : directory)
        }
        return file
    }

    private static func readIndex(_ path: String) throws(ModelLoadError) -> [String: String] {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw .missingFile(path: path, detail: error.localizedDescription)
        }
        return try weightMap(decoding: data, path: path)
    }

    /// The index's tensor name → file name map.
    ///
    /// - Throws: `ModelLoadError.malformed` for anything but a JSON object whose `weight_map` maps strings to
    ///   plain file names inside the checkpoint directory.
    static func weightMap(decoding data: Data, path: String) throws(ModelLoadError) -> [String: String] {
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
            let weightMap = object["weight_map"] as? [String: String]
        else {
            throw .malformed(path: path, detail: "expected a JSON object with a \"weight_map\" of tensor name → file name")
        }
        if let bad = weightMap.values.first(where: { $0.isEmpty || $0.contains("/") || $0.contains("\0") || $0.hasPrefix(".") }) {
            throw .malformed(path: path, detail: "weight_map names a file outside the checkpoint directory: \(bad)")
        }
        return weightMap
    }
}
