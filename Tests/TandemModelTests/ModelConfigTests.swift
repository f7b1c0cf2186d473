import Foundation
import TandemModel
import XCTest

/// config.json of the three supported families, with the defaults transformers applies, and every bad field
/// named.
final class ModelConfigTests: XCTestCase {
    /// TinyLlama-1.1B's config.json fields that matter.
    private let llama: [String: Any] = [
        "model_type": "llama", "hidden_size": 2048, "intermediate_size": 5632, "num_hidden_layers": 22,
        "num_attention_heads": 32, "num_key_value_heads": 4, "vocab_size": 32000, "max_position_embeddings": 2048,
        "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "rope_scaling": NSNull(), "tie_word_embeddings": false,
        "bos_token_id": 1, "eos_token_id": 2,
    ]

    /// Found by fuzz-model-config: an original_max_position_embeddings of 10⁸⁵ trapped converting to Int. Sizes
    /// that are not exact integers within 2³¹ − 1 (1e30 wrapped through `intValue`, 1.5 truncated, `true` read
    /// as 1) are refused by name, as parsed from JSON text.
    func testSizesThatAreNotExactIntegersAreRefused() throws {
        func parse(_ replacing: String, with value: String) throws -> ModelConfig {
            let text = String(decoding: try JSONSerialization.data(withJSONObject: llama), as: UTF8.self)
            let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(text.replacingOccurrences(of: replacing, with: value).utf8)) as? [String: Any])
            return try ModelConfig(json: json, path: "config.json")
        }
        for value in ["1e30", "2048.5", "true", "4294967296"] {
            XCTAssertThrowsError(try parse("\"hidden_size\":2048", with: "\"hidden_size\":\(value)"), value) { error in
                XCTAssertTrue("\(error)".contains("hidden_size must be an integer in 1...2147483647"), "\(error)")
            }
        }
        let huge = #""rope_scaling":{"rope_type":"llama3","factor":8,"low_freq_factor":1,"high_freq_factor":4,"original_max_position_embeddings":128666666666666666666666666666666666666666666666666666666666666666666666666666666666}"#
        XCTAssertThrowsError(try parse("\"rope_scaling\":null", with: huge)) { error in
            XCTAssertTrue("\(error)".contains("original_max_position_embeddings must be an integer"), "\(error)")
        }
        XCTAssertThrowsError(try parse("\"eos_token_id\":2", with: "\"eos_token_id\":[2,true]")) { error in
            XCTAssertTrue("\(error)".contains("eos_token_id must be a token id"), "\(error)")
        }
    }

    func testLlamaFieldsAndDefaults() throws {
        let config = try ModelConfig(json: llama, path: "config.json")
        XCTAssertEqual(config.headDimension, 64)
        XCTAssertEqual(config.keyValueHeadCount, 4)
        XCTAssertEqual(config.ropeScaling, .none)
        XCTAssertFalse(config.qkvBias)
        XCTAssertEqual(config.bosTokenID, 1)
        XCTAssertEqual(config.eosTokenIDs, [2])
        var noKV = llama
        noKV["num_key_value_heads"] = nil
        XCTAssertEqual(try ModelConfig(json: noKV, path: "c").keyValueHeadCount, 32, "absent kv heads = attention heads")
    }

    /// Mistral's window is attention's, not the context's; Qwen2's layer-dependent window is refused by name.
    func testSlidingWindowIsKeptApartFromTheContext() throws {
        var mistral = llama
        mistral["model_type"] = "mistral"
        mistral["max_position_embeddings"] = 32768
        mistral["sliding_window"] = 4096
        let windowed = try ModelConfig(json: mistral, path: "c")
        XCTAssertEqual(windowed.maxPositions, 32768)
        XCTAssertEqual(windowed.slidingWindow, 4096)
        mistral["sliding_window"] = NSNull()
        XCTAssertNil(try ModelConfig(json: mistral, path: "c").slidingWindow)
        var qwen = llama
        qwen["model_type"] = "qwen2"
        qwen["max_position_embeddings"] = 32768
        qwen["sliding_window"] = 4096
        XCTAssertNil(try ModelConfig(json: qwen, path: "c").slidingWindow, "use_sliding_window is false by default")
        qwen["use_sliding_window"] = true
        XCTAssertThrowsError(try ModelConfig(json: qwen, path: "c")) { error in
            XCTAssertTrue("\(error)".contains("use_sliding_window for qwen2"), "\(error)")
        }
    }

    func testQwen2RopeParametersBiasAndLlama3Scaling() throws {
        var qwen = llama
        qwen["model_type"] = "qwen2"
        qwen["rope_theta"] = nil
        qwen["rope_parameters"] = ["rope_theta": 1_000_000.0, "rope_type": "default"]
        qwen["eos_token_id"] = [151643, 151645]
        qwen["head_dim"] = 128
        qwen["tie_word_embeddings"] = true
        let config = try ModelConfig(json: qwen, path: "c")
        XCTAssertEqual(config.ropeTheta, 1_000_000)
        XCTAssertTrue(config.qkvBias)
        XCTAssertEqual(config.eosTokenIDs, [151643, 151645])
        XCTAssertEqual(config.headDimension, 128)
        XCTAssertTrue(config.tieWordEmbeddings)
        var llama3 = llama
        llama3["rope_scaling"] = [
            "rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192,
        ]
        XCTAssertEqual(
            try ModelConfig(json: llama3, path: "c").ropeScaling,
            .llama3(factor: 32, lowFrequencyFactor: 1, highFrequencyFactor: 4, originalMaxPositions: 8192))
        var linear = llama
        linear["rope_scaling"] = ["type": "linear", "factor": 2.0]
        XCTAssertEqual(try ModelConfig(json: linear, path: "c").ropeScaling, .linear(factor: 2))
    }

    func testBadConfigsNameTheField() {
        func failure(_ change: (inout [String: Any]) -> Void) -> String {
            var json = llama
            change(&json)
            do {
                _ = try ModelConfig(json: json, path: "ckpt/config.json")
                return "accepted"
            } catch {
                return "\(error)"
            }
        }
        XCTAssertTrue(failure { $0["model_type"] = "gpt2" }.contains("model_type 'gpt2'; Tandem runs llama, mistral, mixtral, qwen2"))
        XCTAssertTrue(failure { $0["hidden_size"] = nil }.contains("hidden_size is missing"))
        XCTAssertTrue(failure { $0["num_hidden_layers"] = -2 }.contains("num_hidden_layers must be an integer in 1...2147483647, got -2"))
        XCTAssertTrue(failure { $0["num_key_value_heads"] = 5 }.contains("not a multiple of num_key_value_heads 5"))
        XCTAssertTrue(failure { $0["rope_scaling"] = ["rope_type": "yarn", "factor": 4.0] }.contains("rope_scaling type 'yarn'"))
        XCTAssertTrue(failure { $0["rope_scaling"] = ["rope_type": "linear"] }.contains("needs a positive factor"))
        XCTAssertTrue(failure { $0["eos_token_id"] = "2" }.contains("eos_token_id must be a token id"))
        XCTAssertTrue(failure { $0["hidden_act"] = "gelu" }.contains("hidden_act 'gelu'; Tandem's MLP computes silu"))
        XCTAssertTrue(failure { $0["hidden_act"] = 3 }.contains("hidden_act must be a string"))
        XCTAssertTrue(failure { $0["hidden_act"] = "silu" }.contains("accepted"))
        XCTAssertTrue(failure { _ in }.contains("accepted"))
    }

    func testTensorParallelSizesThatSplitTheModel() throws {
        let config = try ModelConfig(json: llama, path: "c")  // 32 heads, 4 kv heads, 5632 intermediate
        XCTAssertEqual(config.validTensorParallelSizes(upTo: 16), [1, 2, 4, 8, 16])
        XCTAssertNoThrow(try config.checkTensorParallel(8, path: "c"))
        XCTAssertThrowsError(try config.checkTensorParallel(3, path: "c")) { error in
            XCTAssertTrue("\(error)".contains("valid sizes: 1, 2, 4, 8"), "\(error)")
        }
    }
}
