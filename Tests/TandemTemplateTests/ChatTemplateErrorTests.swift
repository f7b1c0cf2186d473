import TandemTemplate
import XCTest

/// What the interpreter does not implement is refused when the template is read, naming the construct and its
/// line; hostile input (deep JSON, huge ranges) is refused with a reason, not a crash.
final class ChatTemplateErrorTests: XCTestCase {
    private func syntaxError(_ source: String) -> String {
        do {
            _ = try ChatTemplate(source)
            return "accepted"
        } catch {
            return "\(error)"
        }
    }

    func testUnsupportedConstructsAreNamedWhenTheTemplateIsRead() {
        XCTAssertEqual(syntaxError("a\n{% macro m() %}x{% endmacro %}"), "chat template, line 2: the {% macro %} statement is not supported")
        XCTAssertEqual(syntaxError("{% include 'other.jinja' %}"), "chat template, line 1: the {% include %} statement is not supported")
        XCTAssertEqual(syntaxError("{{ x | wordwrap }}"), "chat template, line 1: uses the filter 'wordwrap', which Tandem's chat templates do not provide")
        XCTAssertEqual(syntaxError("{% if x is prime %}{% endif %}"), "chat template, line 1: uses the test 'prime', which Tandem's chat templates do not provide")
        XCTAssertEqual(syntaxError("\n\n{{ strftime_now('%d') }}"), "chat template, line 3: calls strftime_now(), which Tandem's chat templates do not provide")
        XCTAssertEqual(syntaxError("{{ 'a'.format(1) }}"), "chat template, line 1: calls the method .format(), which Tandem's chat templates do not provide")
        XCTAssertEqual(syntaxError("{% set x %}block{% endset %}"), "chat template, line 1: {% set %} blocks are not supported (only {% set name = value %})")
        XCTAssertEqual(syntaxError("{% for m in messages %}"), "chat template, line 1: missing {% endfor %}")
        XCTAssertEqual(syntaxError("{% endif %}"), "chat template, line 1: unexpected {% endif %}")
        XCTAssertEqual(syntaxError("{{ 'open"), "chat template, line 1: a string is not closed")
        XCTAssertEqual(syntaxError("{# never closed"), "chat template, line 1: a comment is not closed")
    }

    func testRenderingErrorsAreNamed() throws {
        let template = try ChatTemplate("{{ messages[0].content.missing.deeper }}")
        XCTAssertThrowsError(try template.render(messages: .list([.dictionary([("content", .string("x"))])]), addGenerationPrompt: false)) { error in
            XCTAssertEqual("\(error)", "chat template: 'str' object's 'missing' is undefined (reading its 'deeper')")
        }
        XCTAssertThrowsError(try ChatTemplate("{{ range(100000000) | length }}").render(messages: .list([]), addGenerationPrompt: false)) { error in
            XCTAssertEqual(error as? TemplateError, .render("range() of more than 1048576 numbers"))
        }
        XCTAssertThrowsError(try ChatTemplate("{{ raise_exception('no system role') }}").render(messages: .list([]), addGenerationPrompt: false)) { error in
            XCTAssertEqual(error as? TemplateError, .raised("no system role"))
        }
    }

    func testJSONInputIsBoundedAndStrict() {
        XCTAssertThrowsError(try TemplateValue(jsonText: String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000))) { error in
            XCTAssertTrue("\(error)".contains("nested deeper than 128"), "\(error)")
        }
        for bad in ["{\"a\": 1,}", "[1 2]", "\"\\ud800\"", "{\"a\" 1}", "01x", "\"tab\there\""] {
            XCTAssertThrowsError(try TemplateValue(jsonText: bad), bad)
        }
        // Found by fuzz-template-json: 1e654 overflows to infinity, which JSON writes as Infinity (as Python's json
        // does) and must read back.
        XCTAssertEqual(try TemplateValue(jsonText: "[1e654, -Infinity, NaN]").jsonText(), "[Infinity, -Infinity, NaN]")
        XCTAssertEqual(try TemplateValue(jsonText: "{\"b\": 1, \"a\": [true, null, 1.5, \"\\u00e9\\ud83d\\ude80\"]}").jsonText(),
            "{\"b\": 1, \"a\": [true, null, 1.5, \"é🚀\"]}")
    }
}
