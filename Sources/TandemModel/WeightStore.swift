import TandemTensor

/// How a stored tensor's values are kept: plain numbers of a dtype, or ggml blocks of quantized values.
public enum StoredFormat: Sendable, Equatable, CustomStringConvertible {
    case dense(DType)
    case blocks(WeightQuantization)

    public var description: String {
        switch self {
        case let .dense(dtype): "\(dtype)"
        case let .blocks(format): format.rawValue.uppercased()
        }
    }
}

/// A model's tensors by their Hugging Face names, whatever holds them: a safetensors checkpoint directory
/// (`Checkpoint`), or a GGUF file read as the checkpoint it was converted from (`GGUFCheckpoint`). The layers
/// load through this protocol only, so a file format is one conformer, not a branch in every layer.
public protocol WeightStore: Sendable {
    /// The directory or file, as errors name it.
    var path: String { get }
    /// Every tensor name, sorted.
    var keys: [String] { get }
    /// The shape of `key`.
    ///
    /// - Throws: `ModelLoadError.missingTensor`.
    func shape(of key: String) throws(ModelLoadError) -> [Int]
    /// How `key`'s values are stored.
    func format(of key: String) throws(ModelLoadError) -> StoredFormat
    /// Tensor `key` as numbers (blocks widened to fp32): whole, or with `slice`, entries `slice.range` of
    /// dimension `slice.dim`.
    func load(_ key: String, slice: (dim: Int, range: Range<Int>)?) throws(ModelLoadError) -> Tensor
    /// Rows `rows` of the 2-D block-stored tensor `key`, only the values of `columns` (whole blocks), as ggml
    /// block bytes row after row.
    ///
    /// - Throws: `ModelLoadError` when `key` is not block-stored or `columns` cuts a block.
    func blocks(_ key: String, rows: Range<Int>, columns: Range<Int>) throws(ModelLoadError) -> [UInt8]
    /// Checks that `key` has `shape`.
    ///
    /// - Throws: `.missingTensor`, or `.wrongShape` naming both shapes and the file holding `key`.
    func require(_ key: String, shape: [Int]) throws(ModelLoadError)
}

extension WeightStore {
    /// Checks that `key` has `shape`; `path` names the file.
    public func require(_ key: String, shape expected: [Int]) throws(ModelLoadError) {
        let actual = try shape(of: key)
        guard actual == expected else {
            throw .wrongShape(key: key, path: path, expected: "\(expected)", actual: "\(try format(of: key))\(actual)")
        }
    }
}
