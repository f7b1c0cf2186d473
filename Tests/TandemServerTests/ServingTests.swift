import Foundation
import TandemEngine
import TandemModel
import TandemServer
import TandemTemplate
import TandemTensor
import TandemTokenizer
import XCTest

/// Requests served end to end through a real engine on the tiny preset: greedy results equal the engine's own
/// for the same tokens, streamed deltas add up to the finished text, refusals carry OpenAI's statuses, and a
/// stream dropped by its client frees its KV blocks.
final class ServingTests: XCTestCase {
    private struct Fixture {
        let serving: OpenAIServing
        let engine: LLMEngine
        let core: EngineCore
        let tokenizer: BytePairTokenizer
    }

    private func fixture(template: String? = ServerFixtures.chatML) throws -> Fixture {
        let directory = try ServerFixtures.tinyModel(self)
        Matmul.setBLASThreads(1)
        let model = try LlamaModel(model: directory.path, group: .single, precision: .float32)
        let runner = try ModelRunner(model: model, cacheConfig: CacheConfig(blockSize: 16, blockCount: 64), maxNumSeqs: 8, localRanks: 1)
        let tokenizer = try BytePairTokenizer(directory: directory.path)
        let core = EngineCore(runner: runner, tokenizer: tokenizer, eosTokenIDs: [], scheduler: SchedulerConfig(), prefixCaching: true, plans: nil)
        let engine = LLMEngine(core: core)
        addTeardownBlock { engine.shutdown() }
        let serving = OpenAIServing(
            engine: engine, tokenizer: tokenizer, modelName: "tiny", chatTemplate: try template.map { try ChatTemplate($0) },
            specialTokens: [:], contextLength: model.config.maxPositions)
        return Fixture(serving: serving, engine: engine, core: core, tokenizer: tokenizer)
    }

    private func json(_ text: String) throws -> [String: Any] {
        try XCTUnwrap(JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
    }

    private func body(_ reply: OpenAIServing.Reply) throws -> [String: Any] {
        guard case let .body(text) = reply else { throw XCTSkip("expected a body") }
        return try json(text)
    }

    private func events(_ reply: OpenAIServing.Reply) async throws -> [String] {
        guard case let .events(stream) = reply else { throw XCTSkip("expected events") }
        var events: [String] = []
        for await event in stream { events.append(event) }
        return events
    }

    /// The engine's own greedy text for `tokens`, one request alone.
    private func alone(_ fixture: Fixture, _ tokens: [Int], maxTokens: Int) async throws -> String {
        var text = ""
        for try await output in try fixture.engine.add(id: UUID().uuidString, promptTokenIDs: tokens, params: SamplingParams(temperature: 0, maxTokens: maxTokens)) {
            text += output.final?.output.text ?? ""
        }
        return text
    }

    func testCompletionsMatchTheEngineAndCountUsage() async throws {
        let fixture = try fixture()
        let request = try CompletionRequest(body: try TemplateValue(jsonText: #"{"model": "tiny", "prompt": ["the model is", "split"], "max_tokens": 6, "temperature": 0, "n": 2, "echo": true}"#))
        let response = try body(try await fixture.serving.complete(request))
        XCTAssertEqual(response["object"] as? String, "text_completion")
        let choices = try XCTUnwrap(response["choices"] as? [[String: Any]])
        XCTAssertEqual(choices.map { $0["index"] as? Int }, [0, 1, 2, 3])
        for (index, prompt) in ["the model is", "split"].enumerated() {
            let tokens = try fixture.tokenizer.encode(prompt, addSpecialTokens: true)
            let expected = prompt + (try await alone(fixture, tokens, maxTokens: 6))
            XCTAssertEqual(choices[index * 2]["text"] as? String, expected, "echo + the engine's greedy text")
            XCTAssertEqual(choices[index * 2 + 1]["text"] as? String, expected, "n = 2 greedy choices agree")
            XCTAssertEqual(choices[index * 2]["finish_reason"] as? String, "length")
        }
        let usage = try XCTUnwrap(response["usage"] as? [String: Int])
        let promptTokens = try ["the model is", "split"].reduce(0) { $0 + (try fixture.tokenizer.encode($1, addSpecialTokens: true)).count }
        XCTAssertEqual(usage["prompt_tokens"], promptTokens)
        XCTAssertEqual(usage["completion_tokens"], 24)
        XCTAssertEqual(usage["total_tokens"], promptTokens + 24)
        XCTAssertEqual(fixture.core.blockUsage.used, 0)
    }

    func testStreamedChatAddsUpToTheFinishedAnswer() async throws {
        let fixture = try fixture()
        let body = #"{"model": "tiny", "messages": [{"role": "user", "content": "Hello there"}], "max_tokens": 10, "temperature": 0"#
        let finished = try self.body(try await fixture.serving.chat(try ChatCompletionRequest(body: try TemplateValue(jsonText: body + "}"))))
        let message = try XCTUnwrap((finished["choices"] as? [[String: Any]])?.first?["message"] as? [String: Any])
        let answer = try XCTUnwrap(message["content"] as? String)
        let rendered = "<|im_start|>user\nHello there<|im_end|>\n<|im_start|>assistant\n"
        let expected = try await alone(fixture, try fixture.tokenizer.encode(rendered, addSpecialTokens: false), maxTokens: 10)
        XCTAssertEqual(answer, expected, "the template's prompt, as the engine alone")

        let streamed = try await events(try await fixture.serving.chat(try ChatCompletionRequest(body: try TemplateValue(jsonText: body + #", "stream": true, "stream_options": {"include_usage": true}}"#))))
        XCTAssertEqual(streamed.last, "data: [DONE]\n\n")
        XCTAssertTrue(streamed.allSatisfy { $0.hasPrefix("data: ") && $0.hasSuffix("\n\n") })
        let chunks = try streamed.dropLast().map { try json(String($0.dropFirst(6).dropLast(2))) }
        let deltas = chunks.compactMap { ($0["choices"] as? [[String: Any]])?.first?["delta"] as? [String: Any] }
        XCTAssertEqual(deltas.first?["role"] as? String, "assistant")
        XCTAssertEqual(deltas.compactMap { $0["content"] as? String }.joined(), answer)
        XCTAssertEqual((chunks.dropLast().last?["choices"] as? [[String: Any]])?.first?["finish_reason"] as? String, "length")
        let usage = try XCTUnwrap(chunks.last?["usage"] as? [String: Int])
        XCTAssertEqual(usage["completion_tokens"], 10)
        XCTAssertEqual((chunks.last?["choices"] as? [Any])?.count, 0)
        XCTAssertEqual(fixture.core.blockUsage.used, 0)
    }

    func testRefusalsCarryOpenAIsStatuses() async throws {
        let fixture = try fixture(template: nil)
        func refusal(_ body: () async throws -> OpenAIServing.Reply) async -> APIError? {
            do {
                _ = try await body()
                return nil
            } catch {
                return error as? APIError
            }
        }
        let wrongModel = await refusal { try await fixture.serving.complete(try CompletionRequest(body: try TemplateValue(jsonText: #"{"model": "gpt-4", "prompt": "x"}"#))) }
        XCTAssertEqual(wrongModel?.status, 404)
        XCTAssertEqual(wrongModel?.message, "The model `gpt-4` does not exist; this server serves `tiny`.")
        let long = String(repeating: "word ", count: 400)
        let tooLong = await refusal { try await fixture.serving.complete(try CompletionRequest(body: .dictionary([("model", .string("tiny")), ("prompt", .string(long))]))) }
        XCTAssertEqual(tooLong?.status, 400)
        XCTAssertTrue(tooLong?.message.hasPrefix("This model's maximum context length is \(fixture.serving.contextLength) tokens. However, you requested") == true, "\(String(describing: tooLong))")
        let stray = await refusal { try await fixture.serving.complete(try CompletionRequest(body: try TemplateValue(jsonText: #"{"model": "tiny", "prompt": [1, 99999]}"#))) }
        XCTAssertEqual(stray?.message, "token id 99999 is outside the vocabulary (\(fixture.tokenizer.size) tokens)")
        let noTemplate = await refusal { try await fixture.serving.chat(try ChatCompletionRequest(body: try TemplateValue(jsonText: #"{"model": "tiny", "messages": [{"role": "user", "content": "x"}]}"#))) }
        XCTAssertEqual(noTemplate?.status, 400)
        XCTAssertEqual(noTemplate?.param, "messages")
        fixture.engine.shutdown()
        let dead = await refusal { try await fixture.serving.complete(try CompletionRequest(body: try TemplateValue(jsonText: #"{"model": "tiny", "prompt": "x"}"#))) }
        XCTAssertEqual(dead?.status, 503)
    }

    /// A client that reads two events and goes away: its engine request is aborted and its blocks freed.
    func testADroppedStreamFreesItsBlocks() async throws {
        let fixture = try fixture()
        let request = try CompletionRequest(body: try TemplateValue(jsonText: #"{"model": "tiny", "prompt": "the model", "max_tokens": 200, "temperature": 0, "ignore_eos": true, "stream": true}"#))
        guard case let .events(stream) = try await fixture.serving.complete(request) else { return XCTFail("expected events") }
        var received = 0
        for await _ in stream {
            received += 1
            if received == 2 { break }
        }
        XCTAssertEqual(received, 2)
        let deadline = Date(timeIntervalSinceNow: 5)
        while fixture.core.blockUsage.used > 0, Date() < deadline { try await Task.sleep(nanoseconds: 20_000_000) }
        XCTAssertEqual(fixture.core.blockUsage.used, 0, "the dropped stream's blocks are free")
    }
}
