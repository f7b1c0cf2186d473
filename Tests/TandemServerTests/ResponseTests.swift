import TandemEngine
import TandemServer
import XCTest

/// Response bodies and stream chunks in OpenAI's shapes, written out by hand from its API reference.
final class ResponseTests: XCTestCase {
    private let usage = OpenAIResponse.Usage(promptTokens: 5, completionTokens: 3)

    func testFinishedBodies() {
        XCTAssertEqual(
            OpenAIResponse.body(.completions, id: "cmpl-1", created: 1700000000, model: "small", choices: [.init(index: 0, text: "a\"b", finishReason: .length)], usage: usage),
            #"{"id": "cmpl-1", "object": "text_completion", "created": 1700000000, "model": "small", "choices": [{"index": 0, "text": "a\"b", "logprobs": null, "finish_reason": "length"}], "usage": {"prompt_tokens": 5, "total_tokens": 8, "completion_tokens": 3}}"#)
        XCTAssertEqual(
            OpenAIResponse.body(.chatCompletions, id: "chatcmpl-1", created: 1, model: "small", choices: [.init(index: 0, text: "é", finishReason: .stop)], usage: usage),
            #"{"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "small", "choices": [{"index": 0, "message": {"role": "assistant", "content": "é"}, "logprobs": null, "finish_reason": "stop"}], "usage": {"prompt_tokens": 5, "total_tokens": 8, "completion_tokens": 3}}"#)
    }

    func testStreamChunks() {
        XCTAssertEqual(
            OpenAIResponse.event(OpenAIResponse.chunk(.chatCompletions, id: "c", created: 1, model: "m", index: 0, text: "", firstOfChoice: true, finishReason: nil, usageRequested: false)),
            "data: " + #"{"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": null, "finish_reason": null}]}"# + "\n\n")
        XCTAssertEqual(
            OpenAIResponse.chunk(.chatCompletions, id: "c", created: 1, model: "m", index: 1, text: "", finishReason: .stop, usageRequested: true),
            #"{"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [{"index": 1, "delta": {}, "logprobs": null, "finish_reason": "stop"}], "usage": null}"#)
        XCTAssertEqual(
            OpenAIResponse.chunk(.completions, id: "c", created: 1, model: "m", index: 0, text: " fox", finishReason: nil, usageRequested: false),
            #"{"id": "c", "object": "text_completion", "created": 1, "model": "m", "choices": [{"index": 0, "text": " fox", "logprobs": null, "finish_reason": null}]}"#)
        XCTAssertEqual(
            OpenAIResponse.usageChunk(.completions, id: "c", created: 1, model: "m", usage: usage),
            #"{"id": "c", "object": "text_completion", "created": 1, "model": "m", "choices": [], "usage": {"prompt_tokens": 5, "total_tokens": 8, "completion_tokens": 3}}"#)
        XCTAssertEqual(OpenAIResponse.done, "data: [DONE]\n\n")
        XCTAssertEqual(OpenAIResponse.models(["small"], created: 2),
            #"{"object": "list", "data": [{"id": "small", "object": "model", "created": 2, "owned_by": "tandem"}]}"#)
    }
}
