import TandemEngine
import TandemServer
import TandemTemplate
import XCTest

/// Request bodies as clients send them: OpenAI's shapes and defaults are read into the engine's parameters, and
/// every bad field is a 400 naming it — wrong types, out-of-range values, unknown or unsupported parameters.
final class RequestTests: XCTestCase {
    private func completion(_ json: String) throws -> CompletionRequest {
        try CompletionRequest(body: try TemplateValue(jsonText: json))
    }

    private func chat(_ json: String) throws -> ChatCompletionRequest {
        try ChatCompletionRequest(body: try TemplateValue(jsonText: json))
    }

    /// Each (body, param, message): `parse(body)` is a 400 naming `param` with `message`.
    private func assertRefusals(_ cases: [(String, String, String)], _ parse: (String) throws -> Any, line: UInt = #line) {
        for (body, param, message) in cases {
            var refusal: APIError?
            do { _ = try parse(body) } catch { refusal = error as? APIError }
            XCTAssertEqual(refusal?.status, 400, body, line: line)
            XCTAssertEqual(refusal?.param ?? "", param, body, line: line)
            XCTAssertEqual(refusal?.message, message, body, line: line)
        }
    }

    func testCompletionFieldsAndDefaults() throws {
        let plain = try completion(#"{"model": "m", "prompt": "Hello"}"#)
        XCTAssertEqual(plain.prompts, [.text("Hello")])
        XCTAssertEqual(plain.sampling, SamplingParams(maxTokens: 16), "OpenAI's defaults: temperature 1, 16 tokens")
        XCTAssertEqual(plain.n, 1)
        XCTAssertFalse(plain.stream)

        let full = try completion(#"""
            {"model": "m", "prompt": [[1, 2], [3]], "max_tokens": 5, "temperature": 0, "top_p": 0.5, "top_k": 4, "seed": -1,
             "stop": "\n\n", "stop_token_ids": [7], "ignore_eos": true, "n": 2, "echo": true, "stream": true,
             "stream_options": {"include_usage": true}, "presence_penalty": 0, "frequency_penalty": 0.0, "user": "u", "best_of": 1,
             "logit_bias": {}}
            """#)
        XCTAssertEqual(full.prompts, [.tokens([1, 2]), .tokens([3])])
        XCTAssertEqual(full.sampling, SamplingParams(temperature: 0, topP: 0.5, topK: 4, seed: UInt64.max, maxTokens: 5, stop: ["\n\n"], stopTokenIDs: [7], ignoreEOS: true))
        XCTAssertEqual(full.n, 2)
        XCTAssertTrue(full.echo && full.stream && full.includeUsage)
        XCTAssertEqual(try completion(#"{"model": "m", "prompt": ["a", "b"], "stop": ["x", "y"]}"#).prompts, [.text("a"), .text("b")])
        XCTAssertEqual(try completion(#"{"model": "m", "prompt": [5, 6], "max_tokens": null}"#).sampling.maxTokens, 16, "null is absent")
    }

    func testBadCompletionFieldsAreNamed() {
        let cases: [(String, String, String)] = [
            (#"{"prompt": "x"}"#, "model", "model is required"),
            (#"{"model": "m"}"#, "prompt", "prompt is required"),
            (#"{"model": "m", "prompt": 3}"#, "prompt", "prompt must be a string, a list of strings, token ids or lists of token ids, got int"),
            (#"{"model": "m", "prompt": []}"#, "prompt", "prompt must not be an empty list"),
            (#"{"model": "m", "prompt": [1, "a"]}"#, "prompt", "token ids in prompt must be integers ≥ 0"),
            (#"{"model": "m", "prompt": [-1]}"#, "prompt", "token ids in prompt must be integers ≥ 0"),
            (#"{"model": "m", "prompt": "x", "max_tokens": 0}"#, "max_tokens", "max_tokens must be in 1...2147483647, got 0"),
            (#"{"model": "m", "prompt": "x", "max_tokens": 1e12}"#, "max_tokens", "max_tokens must be an integer, got float"),
            (#"{"model": "m", "prompt": "x", "max_tokens": "5"}"#, "max_tokens", "max_tokens must be an integer, got str"),
            (#"{"model": "m", "prompt": "x", "temperature": -0.5}"#, "temperature", "temperature must be in 0.0...1000.0, got -0.5"),
            (#"{"model": "m", "prompt": "x", "top_p": 0}"#, "top_p", "top_p must be in (0, 1], got 0"),
            (#"{"model": "m", "prompt": "x", "top_k": -2}"#, "top_k", "top_k must be in -1...2147483647, got -2"),
            (#"{"model": "m", "prompt": "x", "stop": ""}"#, "stop", "stop strings must not be empty"),
            (#"{"model": "m", "prompt": "x", "stop": [1]}"#, "stop", "stop must be a string or a list of strings"),
            (#"{"model": "m", "prompt": "x", "n": 0}"#, "n", "n must be in 1...128, got 0"),
            (#"{"model": "m", "prompt": ["a", "b", "c"], "n": 50}"#, "n", "n × prompts is 150 choices; at most 128 per request"),
            (#"{"model": "m", "prompt": "x", "stream_options": {"include_usage": true}}"#, "stream_options", "stream_options is only allowed when stream is true"),
            (#"{"model": "m", "prompt": "x", "stream": true, "stream_options": {"usage": true}}"#, "stream_options", "stream_options: unrecognized request argument: usage"),
            (#"{"model": "m", "prompt": "x", "presence_penalty": 0.5}"#, "presence_penalty", "presence_penalty is not supported by Tandem (got 0.5)"),
            (#"{"model": "m", "prompt": "x", "logprobs": 21}"#, "logprobs", "logprobs must be in 0...20, got 21"),
            (#"{"model": "m", "prompt": "x", "logprobs": true}"#, "logprobs", "logprobs must be an integer, got bool"),
            (#"{"model": "m", "prompt": "x", "logprobs": 2, "echo": true}"#, "echo", "echo together with logprobs (the prompt's log-probabilities) is not supported by Tandem"),
            (#"{"model": "m", "prompt": "x", "temprature": 0.5}"#, "temprature", "unrecognized request argument: temprature"),
            (#"["model"]"#, "", "the request body must be a JSON object"),
        ]
        assertRefusals(cases) { try self.completion($0) }
    }

    func testChatFieldsAndDefaults() throws {
        let request = try chat(#"""
            {"model": "m", "messages": [{"role": "system", "content": "Be brief."},
              {"role": "user", "content": [{"type": "text", "text": "Hi"}, {"type": "text", "text": "there"}]},
              {"role": "assistant", "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": "{}"}}]},
              {"role": "tool", "content": "42", "tool_call_id": "call_1"}],
             "tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": "auto", "max_completion_tokens": 9,
             "chat_template_kwargs": {"enable_thinking": false}, "logprobs": false, "stream": true}
            """#)
        guard case let .list(messages) = request.messages, case let .dictionary(user) = messages[1] else { return XCTFail("messages") }
        XCTAssertEqual(user.first { $0.0 == "content" }?.1, .string("Hi\nthere"), "text parts are joined as vLLM joins them")
        XCTAssertEqual(messages[3], try TemplateValue(jsonText: #"{"role": "tool", "content": "42", "tool_call_id": "call_1"}"#), "other fields pass through")
        XCTAssertEqual(request.maxTokens, 9)
        XCTAssertEqual(request.sampling.maxTokens, 9)
        XCTAssertTrue(request.addGenerationPrompt)
        XCTAssertEqual(request.templateArguments, ["enable_thinking": .bool(false)])
        XCTAssertNotNil(request.tools)
        XCTAssertNil(try chat(#"{"model": "m", "messages": [{"role": "user", "content": "x"}]}"#).maxTokens, "no limit: up to the context")
        XCTAssertNil(request.sampling.logprobs, "logprobs: false asks for none")
        XCTAssertEqual(try chat(#"{"model": "m", "messages": [{"role": "user", "content": "x"}], "logprobs": true}"#).sampling.logprobs, 0)
        XCTAssertEqual(try chat(#"{"model": "m", "messages": [{"role": "user", "content": "x"}], "logprobs": true, "top_logprobs": 3}"#).sampling.logprobs, 3)
        XCTAssertEqual(try completion(#"{"model": "m", "prompt": "x", "logprobs": 5}"#).sampling.logprobs, 5)
    }

    func testBadChatFieldsAreNamed() {
        let cases: [(String, String, String)] = [
            (#"{"model": "m", "messages": []}"#, "messages", "messages must be a non-empty list"),
            (#"{"model": "m", "messages": ["hi"]}"#, "messages[0]", "messages[0] must be an object"),
            (#"{"model": "m", "messages": [{"content": "x"}]}"#, "messages[0].role", "messages[0].role must be a string"),
            (#"{"model": "m", "messages": [{"role": "wizard", "content": "x"}]}"#, "messages[0].role", "messages[0].role 'wizard' is not one of assistant, developer, system, tool, user"),
            (#"{"model": "m", "messages": [{"role": "user"}]}"#, "messages[0].content", "messages[0].content is required for role user"),
            (#"{"model": "m", "messages": [{"role": "user", "content": 5}]}"#, "messages[0].content", "messages[0].content must be a string or a list of text parts"),
            (#"{"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]}"#, "messages[0].content[0]",
             #"messages[0].content[0] must be a text part ({"type": "text", "text": …}); Tandem's models read text only"#),
            (#"{"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": 3, "max_completion_tokens": 4}"#, "max_completion_tokens",
             "max_tokens (3) and max_completion_tokens (4) disagree"),
            (#"{"model": "m", "messages": [{"role": "user", "content": "x"}], "tool_choice": "required"}"#, "tool_choice",
             #"tool_choice "required" is not supported by Tandem (only "auto" and "none")"#),
            (#"{"model": "m", "messages": [{"role": "user", "content": "x"}], "top_logprobs": 2}"#, "top_logprobs", "top_logprobs needs logprobs: true"),
            (#"{"model": "m", "messages": [{"role": "user", "content": "x"}], "logprobs": true, "top_logprobs": 30}"#, "top_logprobs", "top_logprobs must be in 0...20, got 30"),
            (#"{"model": "m", "messages": [{"role": "user", "content": "x"}], "logprobs": 2}"#, "logprobs", "logprobs must be true or false, got int"),
            (#"{"model": "m", "messages": [{"role": "user", "content": "x"}], "tools": {"a": 1}}"#, "tools", "tools must be a list of tool objects"),
            (#"{"model": "m", "messages": [{"role": "user", "content": "x"}], "functions": []}"#, "functions", "unrecognized request argument: functions"),
        ]
        assertRefusals(cases) { try self.chat($0) }
    }

    func testErrorBodiesHaveOpenAIsShape() throws {
        let body = APIError.invalid("max_tokens", "max_tokens must be in 1...2147483647, got 0").body()
        XCTAssertEqual(body, #"{"error": {"message": "max_tokens must be in 1...2147483647, got 0", "type": "invalid_request_error", "param": "max_tokens", "code": 400}}"#)
    }
}
