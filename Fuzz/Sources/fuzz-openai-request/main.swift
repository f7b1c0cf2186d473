// A request body as a client sends it to /v1/completions (first byte even) or /v1/chat/completions (odd):
// refused with a 400 naming a reason, or a request whose values the engine accepts (n, max_tokens and the
// sampling parameters within their ranges, chat messages each with a role).
import FuzzSupport
import TandemServer
import TandemTemplate

fuzzerMain { input in
    guard let selector = input.first,
        let body = try? TemplateValue(jsonText: String(decoding: input.dropFirst(), as: UTF8.self))
    else { return }
    do throws(APIError) {
        if selector % 2 == 0 {
            let request = try CompletionRequest(body: body)
            precondition(!request.prompts.isEmpty && request.n >= 1 && request.n * request.prompts.count <= CompletionRequest.maximumChoices, "choices out of range")
            precondition((try? request.sampling.validate()) != nil, "accepted parameters the engine refuses")
        } else {
            let request = try ChatCompletionRequest(body: body)
            guard case let .list(messages) = request.messages else { preconditionFailure("messages are not a list") }
            precondition(!messages.isEmpty, "empty messages accepted")
            precondition((try? request.sampling.validate()) != nil, "accepted parameters the engine refuses")
        }
    } catch {
        precondition(error.status == 400 && !error.message.isEmpty, "a refusal without a reason: \(error)")
    }
}
