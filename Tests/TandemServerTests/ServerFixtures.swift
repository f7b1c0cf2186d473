import Foundation
import TandemModel
import XCTest

/// The checkpoint the server tests serve: the tiny preset, with a ChatML chat template when asked.
enum ServerFixtures {
    /// A ChatML template (Qwen2's layout) written out plainly.
    static let chatML = """
        {% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}{% endfor %}\
        {% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}
        """

    /// Writes the tiny preset (and `chatTemplate` as chat_template.jinja) into a fresh directory removed after
    /// the test.
    static func tinyModel(_ test: XCTestCase, chatTemplate: String? = nil) throws -> URL {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tandem-serve-\(UUID().uuidString)")
        test.addTeardownBlock { try? FileManager.default.removeItem(at: directory) }
        try ModelWriter.write(.tiny, dtype: .bfloat16, seed: 1, to: directory.path)
        if let chatTemplate { try Data(chatTemplate.utf8).write(to: directory.appendingPathComponent("chat_template.jinja")) }
        return directory
    }
}
