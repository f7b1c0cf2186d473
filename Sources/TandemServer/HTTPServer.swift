import Foundation
import Hummingbird
import NIOCore
import TandemComm
import TandemTemplate

/// How `tandem serve` listens.
public struct ServerOptions: Sendable {
    /// 127.0.0.1 unless asked (vLLM binds every interface; Tandem does not by default).
    public var host: String
    public var port: Int
    /// Requests to /v1/* must carry `Authorization: Bearer <key>` when set.
    public var apiKey: String?
    /// Largest request body read; larger ones get 413 without being read.
    public var maximumBodyBytes: Int

    public init(host: String = "127.0.0.1", port: Int = 8000, apiKey: String? = nil, maximumBodyBytes: Int = 4 << 20) {
        (self.host, self.port, self.apiKey, self.maximumBodyBytes) = (host, port, apiKey, maximumBodyBytes)
    }
}

/// The HTTP face of `OpenAIServing` on Hummingbird 2: routes, the API key, the body limit, and replies as
/// JSON bodies or Server-Sent Events. No HTTP is parsed here; Hummingbird (SwiftNIO) does that.
public enum HTTPServer {
    /// The application; `tandem serve` runs it with `ServerLifecycle.run` beside the engine (`runService()` alone
    /// also works, without the engine's lifecycle).
    ///
    /// - Parameters:
    ///   - healthy: whether every rank is alive and the engine steps (`/health` answers 200, else 503).
    ///   - onRunning: called with the bound port once the server listens.
    public static func application(
        serving: OpenAIServing, options: ServerOptions, healthy: @escaping @Sendable () -> Bool,
        onRunning: @escaping @Sendable (Int) async -> Void = { _ in }
    ) -> some ApplicationProtocol {
        let router = Router(context: ServerRequestContext.self)
        router.get("/health") { _, _ -> Response in
            Response(status: healthy() ? .ok : .serviceUnavailable)
        }
        router.get("/metrics") { _, _ -> Response in
            var headers = HTTPFields()
            headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
            return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: serving.metricsText())))
        }
        router.get("/version") { _, _ -> Response in
            json(.ok, (try? TemplateValue.dictionary([("version", .string(TandemVersion.current))]).jsonText()) ?? "{}")
        }
        let api = router.group("v1").add(middleware: APIKeyMiddleware(key: options.apiKey))
        api.get("models") { _, _ -> Response in
            json(.ok, OpenAIResponse.models([serving.modelName], created: Int(Date().timeIntervalSince1970)))
        }
        api.post("completions") { request, context -> Response in
            await respond(until: context.channel) { () async throws(APIError) -> OpenAIServing.Reply in
                try await serving.complete(try CompletionRequest(body: try await body(request, limit: options.maximumBodyBytes)))
            }
        }
        api.post("chat/completions") { request, context -> Response in
            await respond(until: context.channel) { () async throws(APIError) -> OpenAIServing.Reply in
                try await serving.chat(try ChatCompletionRequest(body: try await body(request, limit: options.maximumBodyBytes)))
            }
        }
        return Application(
            router: router, server: .http1(additionalChannelHandlers: [ClientGoneHandler()]),
            configuration: .init(address: .hostname(options.host, port: options.port), serverName: "tandem"),
            onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? options.port) })
    }

    /// Reads and parses a JSON body of at most `limit` bytes.
    private static func body(_ request: Request, limit: Int) async throws(APIError) -> TemplateValue {
        let buffer: ByteBuffer
        do {
            buffer = try await request.body.collect(upTo: limit)
        } catch {
            throw APIError(status: 413, message: "the request body is larger than \(limit) bytes", type: "invalid_request_error", param: nil)
        }
        guard let text = String(validating: buffer.readableBytesView, as: UTF8.self) else {
            throw .invalid(nil, "the request body is not UTF-8")
        }
        do throws(TemplateError) {
            return try TemplateValue(jsonText: text)
        } catch let .render(detail) {
            throw .invalid(nil, "the request body is not JSON: \(detail)")
        } catch {
            throw .invalid(nil, "the request body is not JSON: \(error)")
        }
    }

    /// Runs `work` and answers with its reply, or its error in OpenAI's shape. A client that closes its
    /// connection before the reply (`ClientGoneHandler` closes the channel then) cancels `work`, and so the
    /// engine requests behind it; a stream's end is also noticed by its writer.
    private static func respond(
        until channel: any Channel, _ work: @escaping @Sendable () async throws(APIError) -> OpenAIServing.Reply
    ) async -> Response {
        let task = Task { () async -> Result<OpenAIServing.Reply, APIError> in
            do throws(APIError) {
                return .success(try await work())
            } catch {
                return .failure(error)
            }
        }
        channel.closeFuture.whenComplete { _ in task.cancel() }
        let result = await withTaskCancellationHandler { await task.value } onCancel: { task.cancel() }
        do {
            switch try result.get() {
            case let .body(text):
                return json(.ok, text)
            case let .events(events):
                var headers = HTTPFields()
                headers[.contentType] = "text/event-stream"
                headers[.cacheControl] = "no-cache"
                return Response(status: .ok, headers: headers, body: ResponseBody(asyncSequence: events.map { ByteBuffer(string: $0) }))
            }
        } catch {
            var response = json(HTTPResponse.Status(code: error.status), error.body())
            // The engine is restarting its ranks or stopped: a client may come back.
            if error.status == 503 { response.headers[.retryAfter] = "1" }
            return response
        }
    }

    static func json(_ status: HTTPResponse.Status, _ text: String) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
    }
}

/// Closes a connection whose client closed its side. Hummingbird allows half-closed connections, so a client
/// that went away (closed its socket, was killed) would otherwise go unnoticed until the reply is written — for
/// a plain request, after its whole generation. Closing completes the channel's `closeFuture`, which cancels the
/// request's work (`respond(until:)`) and so aborts its engine requests. (A client that half-closes on purpose
/// while waiting for its reply is treated as gone, as vLLM's server treats it.)
final class ClientGoneHandler: ChannelInboundHandler, RemovableChannelHandler, Sendable {
    typealias InboundIn = Any

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case ChannelEvent.inputClosed? = event as? ChannelEvent { context.close(promise: nil) }
        context.fireUserInboundEventTriggered(event)
    }
}

/// Hummingbird's basic context and the request's connection (to notice a client that went away).
struct ServerRequestContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    let channel: any Channel

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
    }
}

/// `Authorization: Bearer <key>` on every /v1 route when a key is set; 401 in OpenAI's shape otherwise.
struct APIKeyMiddleware<Context: RequestContext>: RouterMiddleware {
    let key: String?

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let key else { return try await next(request, context) }
        let presented = request.headers[.authorization].flatMap { $0.hasPrefix("Bearer ") ? String($0.dropFirst(7)) : nil }
        guard let presented, constantTimeEqual(Array(presented.utf8), Array(key.utf8)) else {
            let error = APIError(status: 401, message: "a valid API key is required (Authorization: Bearer <key>)", type: "authentication_error", param: nil)
            return HTTPServer.json(.unauthorized, error.body())
        }
        return try await next(request, context)
    }
}
