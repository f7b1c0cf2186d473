// JSON as the server reads request bodies into template values: refused with a reason, or a value whose JSON
// text parses back to the same value (keys in the same order) and the same text (NaN is never equal to itself,
// so the text is the check that covers it).
import FuzzSupport
import TandemTemplate

fuzzerMain { input in
    guard let value = try? TemplateValue(jsonText: String(decoding: input, as: UTF8.self)) else { return }
    guard let text = try? value.jsonText() else { return }
    precondition(text.contains("NaN") || (try? TemplateValue(jsonText: text)) == value, "JSON does not round-trip: \(text)")
    precondition((try? TemplateValue(jsonText: text).jsonText()) == text, "JSON text is not stable: \(text)")
}
