/// Why a generation request was refused or could not continue (communication failures surface as `CommError`).
public enum GenerationError: Error, Equatable, CustomStringConvertible {
    /// A request's parameters or prompt are not valid; the message names the field and the fix.
    case invalidRequest(String)
    /// A token id given to the model is outside its vocabulary.
    case tokenOutOfVocabulary(token: Int, vocabularySize: Int)
    /// A forward pass's batch does not fit its own tokens, the KV cache or the model's context (a scheduler fault
    /// or a corrupted step plan); the message names the sequence and the numbers.
    case invalidBatch(String)
    /// The KV cache could not be made (the message names the size).
    case cacheUnavailable(String)

    public var description: String {
        switch self {
        case let .invalidRequest(message): "invalid request: \(message)"
        case let .tokenOutOfVocabulary(token, size): "token id \(token) is outside the vocabulary (0 ..< \(size))"
        case let .invalidBatch(message): "invalid batch: \(message)"
        case let .cacheUnavailable(message): "KV cache unavailable: \(message)"
        }
    }
}
