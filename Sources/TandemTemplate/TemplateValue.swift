import Foundation

/// A value inside a template, with Python's semantics as Jinja gives them: `none`, booleans, integers and floats,
/// strings, lists, dictionaries that keep their insertion order (JSON objects do), a namespace, and `undefined`
/// (a missing variable, key or attribute: prints as nothing, is false, and fails when used further).
public indirect enum TemplateValue: Equatable, Sendable {
    case undefined(String)
    case none
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case list([TemplateValue])
    case dictionary([(String, TemplateValue)])
    case namespace(Namespace)

    /// A `namespace(...)` object: the one mutable value (attributes set with `{% set ns.x = … %}`).
    public final class Namespace: @unchecked Sendable {
        var attributes: [(String, TemplateValue)]
        init(_ attributes: [(String, TemplateValue)]) { self.attributes = attributes }
    }

    public static func == (lhs: TemplateValue, rhs: TemplateValue) -> Bool {
        switch (lhs, rhs) {
        case (.undefined, .undefined), (.none, .none): return true
        case let (.bool(a), .bool(b)): return a == b
        case let (.string(a), .string(b)): return a == b
        case let (.list(a), .list(b)): return a == b
        case let (.dictionary(a), .dictionary(b)):
            return a.count == b.count && a.allSatisfy { key, value in b.first { $0.0 == key }?.1 == value }
        case let (.namespace(a), .namespace(b)): return a === b
        default:
            // Numbers compare by value across int, float and bool, as in Python.
            if let a = lhs.number, let b = rhs.number { return a == b }
            return false
        }
    }

    /// The value as a number (booleans count, as in Python); nil for anything else.
    public var number: Double? {
        switch self {
        case let .int(value): Double(value)
        case let .double(value): value
        case let .bool(value): value ? 1 : 0
        default: nil
        }
    }

    /// Python's truthiness.
    var isTrue: Bool {
        switch self {
        case .undefined, .none: false
        case let .bool(value): value
        case let .int(value): value != 0
        case let .double(value): value != 0
        case let .string(value): !value.isEmpty
        case let .list(value): !value.isEmpty
        case let .dictionary(value): !value.isEmpty
        case .namespace: true
        }
    }

    /// Python's type name, for errors.
    public var typeName: String {
        switch self {
        case .undefined: "undefined"
        case .none: "NoneType"
        case .bool: "bool"
        case .int: "int"
        case .double: "float"
        case .string: "str"
        case .list: "list"
        case .dictionary: "dict"
        case .namespace: "Namespace"
        }
    }

    /// `str(value)` in Python (what `{{ value }}` prints; undefined prints nothing).
    public var text: String {
        switch self {
        case .undefined: ""
        case let .string(value): value
        default: representation
        }
    }

    /// `repr(value)` in Python (how values print inside lists and dictionaries).
    var representation: String {
        switch self {
        case .undefined: ""
        case .none: "None"
        case let .bool(value): value ? "True" : "False"
        case let .int(value): String(value)
        case let .double(value): pythonFloat(value)
        case let .string(value): pythonStringRepr(value)
        case let .list(values): "[" + values.map(\.representation).joined(separator: ", ") + "]"
        case let .dictionary(pairs): "{" + pairs.map { pythonStringRepr($0.0) + ": " + $0.1.representation }.joined(separator: ", ") + "}"
        case let .namespace(object): "<Namespace " + object.attributes.map { "\($0.0)=\($0.1.representation)" }.joined(separator: ", ") + ">"
        }
    }
}

/// Python's `repr(float)`: the shortest digits that round-trip, with Python's exponent style.
func pythonFloat(_ value: Double) -> String {
    if value.isNaN { return "nan" }
    if value.isInfinite { return value < 0 ? "-inf" : "inf" }
    if value == value.rounded(), abs(value) < 1e16 { return String(format: "%.1f", value) }
    let swift = "\(value)"  // shortest round-trip digits, e.g. 1e-05 prints as "1e-05"
    if let e = swift.firstIndex(of: "e") {
        let mantissa = swift[..<e]
        var exponent = String(swift[swift.index(after: e)...])
        let sign = exponent.hasPrefix("-") ? "-" : "+"
        exponent = String(exponent.drop { $0 == "-" || $0 == "+" })
        if exponent.count < 2 { exponent = "0" + exponent }
        return "\(mantissa)e\(sign)\(exponent)"
    }
    return swift
}

/// Python's `repr(str)`: single quotes unless the text has one and no double quote.
func pythonStringRepr(_ value: String) -> String {
    let quote: Character = value.contains("'") && !value.contains("\"") ? "\"" : "'"
    var result = String(quote)
    for scalar in value.unicodeScalars {
        switch scalar {
        case "\\": result += "\\\\"
        case "\n": result += "\\n"
        case "\r": result += "\\r"
        case "\t": result += "\\t"
        default:
            if Character(scalar) == quote {
                result += "\\" + String(quote)
            } else if scalar.value < 0x20 || scalar.value == 0x7F {
                result += String(format: "\\x%02x", scalar.value)
            } else {
                result.unicodeScalars.append(scalar)
            }
        }
    }
    return result + String(quote)
}
