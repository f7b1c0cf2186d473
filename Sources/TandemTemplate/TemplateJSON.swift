/// JSON in and out of template values, as Python's `json` module does it: objects keep their key order
/// (a request's tools are printed by `tojson` in the order the client sent them), numbers with a fraction or an
/// exponent are floats, and output is `json.dumps(value, ensure_ascii=False, indent=…)` byte for byte.
extension TemplateValue {
    /// Parses JSON text.
    ///
    /// - Throws: `TemplateError.render` naming the offset of the first thing that is not JSON.
    public init(jsonText: String) throws(TemplateError) {
        var parser = JSONParser(scalars: Array(jsonText.unicodeScalars))
        let value = try parser.value(depth: 0)
        parser.skipWhitespace()
        guard parser.offset == parser.scalars.count else { throw parser.error("trailing characters") }
        self = value
    }

    /// `json.dumps(self, ensure_ascii=False, indent=indent)` (HF's `tojson` filter).
    ///
    /// - Throws: `TemplateError.render` for an undefined value or a namespace.
    public func jsonText(indent: Int? = nil) throws(TemplateError) -> String {
        try json(indent: indent, level: 0)
    }

    private func json(indent: Int?, level: Int) throws(TemplateError) -> String {
        let itemSeparator = indent == nil ? ", " : ","
        func newline(_ depth: Int) -> String { indent.map { "\n" + String(repeating: " ", count: $0 * depth) } ?? "" }
        switch self {
        case let .undefined(name): throw .render("\(name) is undefined (in tojson)")
        case .none: return "null"
        case let .bool(value): return value ? "true" : "false"
        case let .int(value): return String(value)
        case let .double(value):
            if value.isNaN { return "NaN" }
            if value.isInfinite { return value < 0 ? "-Infinity" : "Infinity" }
            return pythonFloat(value)
        case let .string(value): return jsonString(value)
        case let .list(values):
            if values.isEmpty { return "[]" }
            var parts: [String] = []
            for value in values { parts.append(try value.json(indent: indent, level: level + 1)) }
            return "[" + newline(level + 1) + parts.joined(separator: itemSeparator + newline(level + 1)) + newline(level) + "]"
        case let .dictionary(pairs):
            if pairs.isEmpty { return "{}" }
            var parts: [String] = []
            for (key, value) in pairs { parts.append(jsonString(key) + ": " + (try value.json(indent: indent, level: level + 1))) }
            return "{" + newline(level + 1) + parts.joined(separator: itemSeparator + newline(level + 1)) + newline(level) + "}"
        case .namespace: throw .render("a namespace is not JSON serializable")
        }
    }
}

/// A JSON string as Python writes it with `ensure_ascii=False`.
func jsonString(_ value: String) -> String {
    var result = "\""
    for scalar in value.unicodeScalars {
        switch scalar {
        case "\"": result += "\\\""
        case "\\": result += "\\\\"
        case "\n": result += "\\n"
        case "\r": result += "\\r"
        case "\t": result += "\\t"
        case "\u{08}": result += "\\b"
        case "\u{0C}": result += "\\f"
        default:
            if scalar.value < 0x20 {
                result += "\\u" + String(repeating: "0", count: 4 - String(scalar.value, radix: 16).count) + String(scalar.value, radix: 16)
            } else {
                result.unicodeScalars.append(scalar)
            }
        }
    }
    return result + "\""
}

private struct JSONParser {
    let scalars: [Unicode.Scalar]
    var offset = 0
    /// Deeper nesting is refused (a hostile body must not exhaust the stack).
    static let maximumDepth = 128

    func error(_ detail: String) -> TemplateError { .render("invalid JSON at character \(offset): \(detail)") }

    mutating func skipWhitespace() {
        while offset < scalars.count, [" ", "\n", "\r", "\t"].contains(scalars[offset]) { offset += 1 }
    }

    mutating func value(depth: Int) throws(TemplateError) -> TemplateValue {
        guard depth < Self.maximumDepth else { throw error("nested deeper than \(Self.maximumDepth)") }
        skipWhitespace()
        guard offset < scalars.count else { throw error("unexpected end") }
        switch scalars[offset] {
        case "{":
            offset += 1
            var pairs: [(String, TemplateValue)] = []
            skipWhitespace()
            if offset < scalars.count, scalars[offset] == "}" { offset += 1; return .dictionary(pairs) }
            while true {
                skipWhitespace()
                guard offset < scalars.count, scalars[offset] == "\"" else { throw error("expected a key") }
                let key = try string()
                skipWhitespace()
                guard offset < scalars.count, scalars[offset] == ":" else { throw error("expected ':'") }
                offset += 1
                let item = try value(depth: depth + 1)
                // A repeated key keeps its first place and its last value, as Python's dict does.
                if let index = pairs.firstIndex(where: { $0.0 == key }) { pairs[index].1 = item } else { pairs.append((key, item)) }
                skipWhitespace()
                guard offset < scalars.count else { throw error("unexpected end") }
                if scalars[offset] == "," { offset += 1; continue }
                guard scalars[offset] == "}" else { throw error("expected ',' or '}'") }
                offset += 1
                return .dictionary(pairs)
            }
        case "[":
            offset += 1
            var items: [TemplateValue] = []
            skipWhitespace()
            if offset < scalars.count, scalars[offset] == "]" { offset += 1; return .list(items) }
            while true {
                items.append(try value(depth: depth + 1))
                skipWhitespace()
                guard offset < scalars.count else { throw error("unexpected end") }
                if scalars[offset] == "," { offset += 1; continue }
                guard scalars[offset] == "]" else { throw error("expected ',' or ']'") }
                offset += 1
                return .list(items)
            }
        case "\"":
            return .string(try string())
        default:
            // Python's json also reads the NaN and infinities it writes.
            let words: [(String, TemplateValue)] = [
                ("true", .bool(true)), ("false", .bool(false)), ("null", .none), ("NaN", .double(.nan)),
                ("Infinity", .double(.infinity)), ("-Infinity", .double(-.infinity)),
            ]
            for (word, result) in words where matches(word) {
                offset += word.unicodeScalars.count
                return result
            }
            return try number()
        }
    }

    private func matches(_ word: String) -> Bool {
        let characters = Array(word.unicodeScalars)
        return offset + characters.count <= scalars.count && Array(scalars[offset..<(offset + characters.count)]) == characters
    }

    private mutating func number() throws(TemplateError) -> TemplateValue {
        let start = offset
        var isFloat = false
        while offset < scalars.count, "+-0123456789.eE".unicodeScalars.contains(scalars[offset]) {
            if ".eE".unicodeScalars.contains(scalars[offset]) { isFloat = true }
            offset += 1
        }
        let text = String(String.UnicodeScalarView(scalars[start..<offset]))
        if !isFloat, let integer = Int(text) { return .int(integer) }
        guard !text.isEmpty, let double = Double(text) else { throw error("not a value") }
        return .double(double)
    }

    private mutating func string() throws(TemplateError) -> String {
        offset += 1
        var result = String.UnicodeScalarView()
        while offset < scalars.count {
            let scalar = scalars[offset]
            offset += 1
            switch scalar {
            case "\"": return String(result)
            case "\\":
                guard offset < scalars.count else { throw error("unfinished escape") }
                let escaped = scalars[offset]
                offset += 1
                switch escaped {
                case "\"", "\\", "/": result.append(escaped)
                case "b": result.append("\u{08}")
                case "f": result.append("\u{0C}")
                case "n": result.append("\n")
                case "r": result.append("\r")
                case "t": result.append("\t")
                case "u":
                    var code = try hex4()
                    if (0xD800..<0xDC00).contains(code), matches("\\u") {
                        offset += 2
                        let low = try hex4()
                        guard (0xDC00..<0xE000).contains(low) else { throw error("unpaired surrogate") }
                        code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                    }
                    guard let decoded = Unicode.Scalar(code) else { throw error("unpaired surrogate") }
                    result.append(decoded)
                default: throw error("bad escape \\\(escaped)")
                }
            default:
                guard scalar.value >= 0x20 else { throw error("control character in a string") }
                result.append(scalar)
            }
        }
        throw error("unfinished string")
    }

    private mutating func hex4() throws(TemplateError) -> UInt32 {
        guard offset + 4 <= scalars.count, let code = UInt32(String(String.UnicodeScalarView(scalars[offset..<(offset + 4)])), radix: 16) else {
            throw error("bad \\u escape")
        }
        offset += 4
        return code
    }
}
