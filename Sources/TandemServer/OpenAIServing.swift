import Foundation
import TandemEngine
import TandemModel
import TandemTemplate
import TandemTokenizer

/// The server's work between HTTP and the engine (vLLM's `OpenAIServingCompletion` and `…Chat`): a request's
/// prompts are rendered by the chat template (chat) and tokenized, checked against the context, added to the
/// engine once per choice, and the engine's outputs become a response body or a stream of Server-Sent Events.
///
/// Runs on the HTTP server's tasks; the engine runs on its own thread (`LLMEngine`). Cancelling a stream's
/// consumer (a client that goes away) cancels the engine requests behind it, which frees their KV blocks.
public final class OpenAIServing: Sendable {
    /// What a request gets back.
    public enum Reply: Sendable {
        /// A finished JSON body.
        case body(String)
        /// Server-Sent Events, ending with `data: [DONE]`.
        case events(AsyncStream<String>)
    }

    private let engine: LLMEngine
    private let tokenizer: any Tokenizer
    /// The name clients must ask for (`--served-model-name`, or the checkpoint directory's name).
    public let modelName: String
    private let chatTemplate: ChatTemplate?
    private let specialTokens: [String: String]
    /// The model's context (prompt and completion together).
    public let contextLength: Int
    /// What `/metrics` reports.
    public let metrics: ServerMetrics

    public init(engine: LLMEngine, tokenizer: any Tokenizer, modelName: String, chatTemplate: ChatTemplate?, specialTokens: [String: String], contextLength: Int) {
        self.engine = engine
        self.tokenizer = tokenizer
        self.modelName = modelName
        self.chatTemplate = chatTemplate
        self.specialTokens = specialTokens
        self.contextLength = contextLength
        metrics = ServerMetrics(modelName: modelName)
    }

    /// `GET /metrics`: the Prometheus text.
    public func metricsText() -> String {
        metrics.render(stats: engine.stats, replicas: engine.replicaStats, restartCount: engine.restarts)
    }

    /// `POST /v1/completions`.
    public func complete(_ request: CompletionRequest) async throws(APIError) -> Reply {
        try checkModel(request.model)
        var prompts: [(text: String, tokens: [Int])] = []
        for prompt in request.prompts {
            switch prompt {
            case let .text(text):
                do {
                    prompts.append((text, try tokenizer.encode(text, addSpecialTokens: true)))
                } catch {
                    throw .invalid("prompt", "the prompt cannot be tokenized: \(error)")
                }
            case let .tokens(ids):
                guard let stray = ids.first(where: { $0 >= tokenizer.size }) else {
                    prompts.append((tokenizer.decode(ids, skipSpecialTokens: false), ids))
                    continue
                }
                throw .invalid("prompt", "token id \(stray) is outside the vocabulary (\(tokenizer.size) tokens)")
            }
        }
        for prompt in prompts { try checkContext(prompt.tokens.count, maxTokens: request.sampling.maxTokens, param: "prompt") }
        return try await run(
            .completions, id: "cmpl-\(UUID().uuidString)", prompts: prompts, params: request.sampling, n: request.n, echo: request.echo,
            stream: request.stream, includeUsage: request.includeUsage)
    }

    /// `POST /v1/chat/completions`.
    public func chat(_ request: ChatCompletionRequest) async throws(APIError) -> Reply {
        try checkModel(request.model)
        guard let chatTemplate else {
            throw APIError(status: 400, message: "the model has no chat template (tokenizer_config.json's chat_template or chat_template.jinja); use /v1/completions", type: "invalid_request_error", param: "messages")
        }
        let text: String
        do {
            text = try chatTemplate.render(
                messages: request.messages, tools: request.tools, addGenerationPrompt: request.addGenerationPrompt,
                specialTokens: specialTokens, extra: request.templateArguments)
        } catch {
            throw .invalid("messages", "\(error)")
        }
        let tokens: [Int]
        do {
            tokens = try tokenizer.encode(text, addSpecialTokens: false)
        } catch {
            throw .invalid("messages", "the rendered conversation cannot be tokenized: \(error)")
        }
        var params = request.sampling
        params.maxTokens = request.maxTokens ?? max(contextLength - tokens.count - 1, 1)
        try checkContext(tokens.count, maxTokens: params.maxTokens, param: "messages")
        return try await run(
            .chatCompletions, id: "chatcmpl-\(UUID().uuidString)", prompts: [(text, tokens)], params: params, n: request.n, echo: false,
            stream: request.stream, includeUsage: request.includeUsage)
    }

    private func checkModel(_ name: String) throws(APIError) {
        guard name == modelName else {
            throw APIError(status: 404, message: "The model `\(name)` does not exist; this server serves `\(modelName)`.", type: "not_found_error", param: "model")
        }
    }

    /// vLLM's rule: the prompt and the tokens asked for must fit in the context.
    private func checkContext(_ promptTokens: Int, maxTokens: Int, param: String) throws(APIError) {
        guard promptTokens + maxTokens <= contextLength - 1 else {
            throw .invalid(param, "This model's maximum context length is \(contextLength) tokens. However, you requested \(promptTokens + maxTokens) tokens (\(promptTokens) in the \(param), \(maxTokens) for the completion). Please reduce the length of the \(param) or the completion.")
        }
    }

    /// One engine request per (prompt, choice): index `prompt × n + choice`.
    private func run(
        _ endpoint: OpenAIResponse.Endpoint, id: String, prompts: [(text: String, tokens: [Int])], params: SamplingParams, n: Int, echo: Bool,
        stream: Bool, includeUsage: Bool
    ) async throws(APIError) -> Reply {
        var streams: [(index: Int, prompt: Int, stream: LLMEngine.Stream)] = []
        do {
            for (promptIndex, prompt) in prompts.enumerated() {
                for choice in 0..<n {
                    var choiceParams = params
                    // n seeded choices must differ: each gets its own seed derived from the request's.
                    if let seed = params.seed, n > 1 { choiceParams.seed = seed &+ UInt64(choice) }
                    let index = promptIndex * n + choice
                    streams.append((index, promptIndex, try engine.add(id: "\(id)-\(index)", prompt: prompt.text, promptTokenIDs: prompt.tokens, params: choiceParams)))
                }
            }
        } catch {
            for (index, _, _) in streams { engine.abort("\(id)-\(index)") }
            throw Self.apiError(error)
        }
        let created = Int(Date().timeIntervalSince1970)
        let promptTokens = prompts.reduce(0) { $0 + $1.tokens.count }
        if stream {
            return .events(
                events(
                    endpoint, id: id, created: created, streams: streams, prompts: prompts, echo: echo, logprobs: params.logprobs != nil,
                    includeUsage: includeUsage, promptTokens: promptTokens))
        }
        var choices: [OpenAIResponse.Choice] = []
        var completionTokens = 0
        for (index, promptIndex, choiceStream) in streams {
            var text = echo ? prompts[promptIndex].text : ""
            var reason: FinishReason?
            var steps: [OpenAIResponse.LogprobStep] = []
            do {
                for try await output in choiceStream {
                    if let failure = output.failure { throw failure }
                    steps += output.logprobs.map(logprobStep)
                    if let final = output.final {
                        metrics.observe(final.metrics, finishReason: final.output.finishReason)
                        text += final.output.text
                        reason = final.output.finishReason
                        completionTokens += final.output.tokenIDs.count
                    }
                }
            } catch {
                for (other, _, _) in streams { engine.abort("\(id)-\(other)") }
                throw Self.apiError(error)
            }
            choices.append(.init(index: index, text: text, finishReason: reason, logprobs: params.logprobs == nil ? nil : steps))
        }
        return .body(OpenAIResponse.body(endpoint, id: id, created: created, model: modelName, choices: choices, usage: .init(promptTokens: promptTokens, completionTokens: completionTokens)))
    }

    private func events(
        _ endpoint: OpenAIResponse.Endpoint, id: String, created: Int, streams: [(index: Int, prompt: Int, stream: LLMEngine.Stream)],
        prompts: [(text: String, tokens: [Int])], echo: Bool, logprobs: Bool, includeUsage: Bool, promptTokens: Int
    ) -> AsyncStream<String> {
        let (model, metrics) = (modelName, self.metrics)
        return AsyncStream { continuation in
            let producer = Task {
                let completionTokens = await withTaskGroup(of: Int.self) { group in
                    for (index, promptIndex, choiceStream) in streams {
                        group.addTask {
                            var first = true
                            var tokens = 0
                            // Log-probabilities of tokens whose text is still held back go with the next chunk.
                            var steps: [OpenAIResponse.LogprobStep] = []
                            var textOffset = 0
                            do {
                                for try await output in choiceStream {
                                    if let failure = output.failure { throw failure }
                                    tokens += output.newTokenIDs.count
                                    steps += output.logprobs.map(self.logprobStep)
                                    if let final = output.final { metrics.observe(final.metrics, finishReason: final.output.finishReason) }
                                    var text = output.textDelta
                                    if first && echo { text = prompts[promptIndex].text + text }
                                    guard !text.isEmpty || output.finishReason != nil || first else { continue }
                                    continuation.yield(OpenAIResponse.event(OpenAIResponse.chunk(
                                        endpoint, id: id, created: created, model: model, index: index, text: text, firstOfChoice: first,
                                        logprobs: logprobs ? steps : nil, textOffset: textOffset, finishReason: output.finishReason,
                                        usageRequested: includeUsage)))
                                    textOffset += steps.reduce(0) { $0 + $1.sampled.token.unicodeScalars.count }
                                    steps.removeAll()
                                    first = false
                                }
                            } catch {
                                continuation.yield(OpenAIResponse.event(Self.apiError(error).body()))
                            }
                            return tokens
                        }
                    }
                    return await group.reduce(0, +)
                }
                if includeUsage {
                    continuation.yield(OpenAIResponse.event(OpenAIResponse.usageChunk(
                        endpoint, id: id, created: created, model: model, usage: .init(promptTokens: promptTokens, completionTokens: completionTokens))))
                }
                continuation.yield(OpenAIResponse.done)
                continuation.finish()
            }
            continuation.onTermination = { _ in producer.cancel() }
        }
    }

    /// An engine token's log-probabilities with the tokens' text and bytes.
    private func logprobStep(_ logprobs: TokenLogprobs) -> OpenAIResponse.LogprobStep {
        func entry(_ candidate: TokenLogprobs.Candidate) -> OpenAIResponse.TokenLogprob {
            OpenAIResponse.TokenLogprob(
                token: tokenizer.decode([candidate.tokenID], skipSpecialTokens: false), bytes: tokenizer.bytes(of: candidate.tokenID),
                logprob: candidate.logprob)
        }
        return OpenAIResponse.LogprobStep(sampled: entry(logprobs.sampled), top: logprobs.top.map(entry))
    }

    /// The engine's refusals as the API reports them: a request it cannot run is the client's (400), a dead
    /// engine is the server's (503, retry later).
    static func apiError(_ error: any Error) -> APIError {
        switch error {
        case let error as GenerationError:
            return .invalid(nil, "\(error)")
        case let error as EngineError:
            switch error {
            case .requestTooLarge, .duplicateRequest, .nonFiniteLogits: return .invalid(nil, "\(error)")
            default: return APIError(status: 503, message: "\(error); retry later", type: "service_unavailable", param: nil)
            }
        default:
            return APIError(status: 503, message: "\(error); retry later", type: "service_unavailable", param: nil)
        }
    }
}
