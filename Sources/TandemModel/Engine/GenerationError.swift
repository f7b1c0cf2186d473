/// Why a generation request was refused or could not continue (communication failures surface as `CommError`).
public enum GenerationError: Error, Equatable, CustomStringConvertible {
    /// A request's parameters or prompt are not valid; the message names the field and the fix.
    case invalidRequest(String)
    /// A token id given to the model is outside its vocabulary.
    case tokenOutOfVocabulary(token: Int, vocabularySize: Int)
    /// A sequence would grow past the positions its cache was made for.
    case cacheFull(positions: Int, capacity: Int)

    public var description: String {
        switch self {
        case let .invalidRequest(message): "invalid request: \(message)"
        case let .tokenOutOfVocabulary(token, size): "token id \(token) is outside the vocabulary (0 ..< \(size))"
        case let .cacheFull(positions, capacity): "a sequence of \(positions) positions exceeds its cache of \(capacity)"
        }
    }
}
