/// Cuts a template into text and tags, applying Jinja's whitespace rules as Hugging Face configures them
/// (`trim_blocks` and `lstrip_blocks` on, `keep_trailing_newline` off) and the `-`/`+` markers, and tokenizes
/// the inside of each tag.
enum TemplateLexer {
    enum Token: Equatable {
        case name(String)
        case string(String)
        case int(Int)
        case double(Double)
        case symbol(String)
    }

    enum Segment {
        case text(String)
        /// `{{ … }}`
        case output([Token], line: Int)
        /// `{% … %}`
        case statement([Token], line: Int)
    }

    private static let symbols = ["//", "**", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~", "<", ">", "(", ")", "[", "]", "{", "}", ",", ":", ".", "|", "="]

    static func segments(_ template: String) throws(TemplateError) -> [Segment] {
        var source = Array(template.replacingOccurrences(of: "\r\n", with: "\n").unicodeScalars)
        if source.last == "\n" { source.removeLast() }
        var segments: [Segment] = []
        var index = 0
        var line = 1
        var lineStarting = true
        while index < source.count {
            guard let open = nextTag(source, from: index) else {
                segments.append(.text(String(String.UnicodeScalarView(source[index...]))))
                break
            }
            var text = Array(source[index..<open])
            let kind = source[open + 1]  // "{", "%" or "#"
            let marker = open + 2 < source.count ? source[open + 2] : " "
            if marker == "-" {
                while let last = text.last, last.properties.isWhitespace { text.removeLast() }
            } else if marker != "+", kind != "{" {
                let lineStart = (text.lastIndex(of: "\n").map { $0 + 1 }) ?? 0
                if (lineStart > 0 || lineStarting), lineStart < text.count, text[lineStart...].allSatisfy({ $0.properties.isWhitespace }) {
                    text.removeSubrange(lineStart...)
                }
            }
            if !text.isEmpty { segments.append(.text(String(String.UnicodeScalarView(text)))) }
            line += source[index..<open].filter { $0 == "\n" }.count
            let tagLine = line
            var cursor = open + 2 + (marker == "-" || marker == "+" ? 1 : 0)
            var trimAfter = false
            if kind == "#" {
                guard let end = find(["#", "}"], in: source, from: cursor) else { throw .syntax(line: tagLine, detail: "a comment is not closed") }
                trimAfter = end > cursor && source[end - 1] == "-"
                line += source[cursor..<end].filter { $0 == "\n" }.count
                cursor = end + 2
            } else {
                let closer: [Unicode.Scalar] = kind == "%" ? ["%", "}"] : ["}", "}"]
                var tokens: [Token] = []
                while true {
                    while cursor < source.count, source[cursor].properties.isWhitespace {
                        if source[cursor] == "\n" { line += 1 }
                        cursor += 1
                    }
                    guard cursor < source.count else { throw .syntax(line: tagLine, detail: "a tag is not closed") }
                    if (source[cursor] == "-" || source[cursor] == "+"), starts(closer, in: source, at: cursor + 1) {
                        trimAfter = source[cursor] == "-"
                        cursor += 3
                        break
                    }
                    if starts(closer, in: source, at: cursor) {
                        cursor += 2
                        break
                    }
                    tokens.append(try token(source, &cursor, line: tagLine))
                }
                segments.append(kind == "%" ? .statement(tokens, line: tagLine) : .output(tokens, line: tagLine))
            }
            if trimAfter {
                while cursor < source.count, source[cursor].properties.isWhitespace {
                    if source[cursor] == "\n" { line += 1 }
                    cursor += 1
                }
            } else if kind != "{", cursor < source.count, source[cursor] == "\n" {
                line += 1
                cursor += 1
            }
            lineStarting = cursor > 0 && source[cursor - 1] == "\n"
            index = cursor
        }
        return segments
    }

    private static func nextTag(_ source: [Unicode.Scalar], from start: Int) -> Int? {
        var index = start
        while index + 1 < source.count {
            if source[index] == "{", ["{", "%", "#"].contains(source[index + 1]) { return index }
            index += 1
        }
        return nil
    }

    private static func starts(_ pattern: [Unicode.Scalar], in source: [Unicode.Scalar], at index: Int) -> Bool {
        index + pattern.count <= source.count && Array(source[index..<(index + pattern.count)]) == pattern
    }

    private static func find(_ pattern: [Unicode.Scalar], in source: [Unicode.Scalar], from start: Int) -> Int? {
        var index = start
        while index + pattern.count <= source.count {
            if starts(pattern, in: source, at: index) { return index }
            index += 1
        }
        return nil
    }

    private static func token(_ source: [Unicode.Scalar], _ cursor: inout Int, line: Int) throws(TemplateError) -> Token {
        let first = source[cursor]
        if first == "_" || first.properties.isAlphabetic {
            let start = cursor
            while cursor < source.count, source[cursor] == "_" || source[cursor].properties.isAlphabetic || ("0"..."9").contains(source[cursor]) {
                cursor += 1
            }
            return .name(String(String.UnicodeScalarView(source[start..<cursor])))
        }
        if ("0"..."9").contains(first) {
            let start = cursor
            var isFloat = false
            while cursor < source.count {
                let scalar = source[cursor]
                if ("0"..."9").contains(scalar) || scalar == "_" {
                    cursor += 1
                } else if scalar == ".", !isFloat, cursor + 1 < source.count, ("0"..."9").contains(source[cursor + 1]) {
                    isFloat = true
                    cursor += 1
                } else if scalar == "e" || scalar == "E", cursor + 1 < source.count,
                    ("0"..."9").contains(source[cursor + 1]) || ((source[cursor + 1] == "-" || source[cursor + 1] == "+") && cursor + 2 < source.count && ("0"..."9").contains(source[cursor + 2]))
                {
                    isFloat = true
                    cursor += 2
                } else {
                    break
                }
            }
            let text = String(String.UnicodeScalarView(source[start..<cursor])).replacingOccurrences(of: "_", with: "")
            if !isFloat, let value = Int(text) { return .int(value) }
            guard let value = Double(text) else { throw .syntax(line: line, detail: "bad number \(text)") }
            return .double(value)
        }
        if first == "'" || first == "\"" {
            cursor += 1
            var result = String.UnicodeScalarView()
            while cursor < source.count, source[cursor] != first {
                var scalar = source[cursor]
                cursor += 1
                if scalar == "\\", cursor < source.count {
                    let escaped = source[cursor]
                    cursor += 1
                    switch escaped {
                    case "n": scalar = "\n"
                    case "t": scalar = "\t"
                    case "r": scalar = "\r"
                    case "0": scalar = "\0"
                    case "\\", "'", "\"": scalar = escaped
                    case "\n": continue
                    case "x", "u", "U":
                        let digits = escaped == "x" ? 2 : escaped == "u" ? 4 : 8
                        guard cursor + digits <= source.count,
                            let code = UInt32(String(String.UnicodeScalarView(source[cursor..<(cursor + digits)])), radix: 16),
                            let decoded = Unicode.Scalar(code)
                        else { throw .syntax(line: line, detail: "bad \\\(escaped) escape in a string") }
                        cursor += digits
                        scalar = decoded
                    default:
                        // Python keeps an unknown escape as written.
                        result.append("\\")
                        scalar = escaped
                    }
                }
                result.append(scalar)
            }
            guard cursor < source.count else { throw .syntax(line: line, detail: "a string is not closed") }
            cursor += 1
            return .string(String(result))
        }
        for symbol in symbols where starts(Array(symbol.unicodeScalars), in: source, at: cursor) {
            cursor += symbol.unicodeScalars.count
            return .symbol(symbol)
        }
        throw .syntax(line: line, detail: "unexpected character '\(first)'")
    }
}
