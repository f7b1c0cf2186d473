import TandemTensor

/// Why a checkpoint could not be loaded; every case names the file and, where there is one, the tensor key.
public enum ModelLoadError: Error, Equatable, CustomStringConvertible {
    /// A file the checkpoint needs is not there (or cannot be opened).
    case missingFile(path: String, detail: String)
    /// A file is not valid for its format (truncated, a malformed header, offsets outside the file …).
    case malformed(path: String, detail: String)
    /// A tensor the model needs is in no file.
    case missingTensor(key: String, path: String)
    /// A file or index holds a tensor the checkpoint does not account for.
    case unexpectedTensor(key: String, path: String)
    /// A tensor's shape or dtype is not what the model needs.
    case wrongShape(key: String, path: String, expected: String, actual: String)
    /// A tensor's dtype is one Tandem does not compute with.
    case unsupportedDType(key: String, path: String, dtype: String)
    /// The checkpoint asks for something Tandem does not run (a model type, a RoPE scaling, a split).
    case unsupported(path: String, detail: String)

    /// A quantized linear layer whose rows (`columns` wide on this rank) are not whole blocks of `quantization`
    /// nor of its 32-value fallback.
    static func cutBlocks(_ name: String, quantization: WeightQuantization, columns: Int, path: String) -> ModelLoadError {
        .unsupported(
            path: path,
            detail: "\(name): \(quantization.rawValue) stores rows in blocks of \(quantization.blockElements) values\(quantization.blockElements > 32 ? " (or 32 as q8_0)" : ""), but this rank's rows have \(columns) (after any tensor-parallel split); choose a tensor-parallel size that leaves whole blocks")
    }

    public var description: String {
        switch self {
        case let .missingFile(path, detail): "\(path): \(detail)"
        case let .malformed(path, detail): "\(path) is not a valid checkpoint file: \(detail)"
        case let .missingTensor(key, path): "tensor '\(key)' is missing from \(path)"
        case let .unexpectedTensor(key, path): "\(path) has a tensor '\(key)' that the checkpoint does not account for"
        case let .wrongShape(key, path, expected, actual): "tensor '\(key)' in \(path) is \(actual), expected \(expected)"
        case let .unsupportedDType(key, path, dtype):
            "tensor '\(key)' in \(path) has dtype \(dtype); Tandem reads F32, F16, BF16, I8, I32 and I64"
        case let .unsupported(path, detail): "\(path): unsupported \(detail)"
        }
    }
}
