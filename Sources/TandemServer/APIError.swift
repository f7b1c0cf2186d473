import TandemTemplate

/// An error as OpenAI's API returns it: an HTTP status and `{"error": {"message", "type", "param", "code"}}`.
public struct APIError: Error, Equatable, CustomStringConvertible {
    /// The HTTP status: 400 bad request, 401 no or wrong key, 404 unknown model or route, 413 body too large,
    /// 503 the engine is down.
    public let status: Int
    public let message: String
    /// OpenAI's error type (`invalid_request_error`, `authentication_error`, `not_found_error`, …).
    public let type: String
    /// The request field at fault, when one is.
    public let param: String?

    public var description: String { "\(status) \(type): \(message)" }

    /// A bad request naming `param`.
    public static func invalid(_ param: String?, _ message: String) -> APIError {
        APIError(status: 400, message: message, type: "invalid_request_error", param: param)
    }

    /// The response body.
    public func body() -> String {
        let error: TemplateValue = .dictionary([
            ("message", .string(message)), ("type", .string(type)), ("param", param.map(TemplateValue.string) ?? .none),
            ("code", .int(status)),
        ])
        return (try? TemplateValue.dictionary([("error", error)]).jsonText()) ?? "{}"
    }
}
