import Foundation

/// The functions, methods, filters and tests templates may use, and Python's operators on template values.
/// Each name here is one the parser admits (`TemplateParser.functions`, `.methods`, `.filters`, `.tests`).
enum TemplateBuiltins {
    // MARK: - Functions

    static func function(_ name: String, _ arguments: [TemplateValue], _ keywords: [(String, TemplateValue)]) throws(TemplateError) -> TemplateValue {
        switch name {
        case "raise_exception":
            throw .raised(arguments.first?.text ?? "")
        case "namespace":
            var attributes: [(String, TemplateValue)] = []
            if case let .dictionary(pairs)? = arguments.first { attributes = pairs }
            for (key, value) in keywords {
                if let index = attributes.firstIndex(where: { $0.0 == key }) { attributes[index].1 = value } else { attributes.append((key, value)) }
            }
            return .namespace(.init(attributes))
        case "dict":
            return .dictionary(keywords)
        case "range":
            let bounds = arguments.compactMap(\.integer)
            guard bounds.count == arguments.count, (1...3).contains(bounds.count) else { throw .render("range() takes 1 to 3 integers") }
            let (start, stop, step) = bounds.count == 1 ? (0, bounds[0], 1) : (bounds[0], bounds[1], bounds.count == 3 ? bounds[2] : 1)
            guard step != 0 else { throw .render("range() step must not be zero") }
            let values = Array(stride(from: start, to: stop, by: step).prefix(TemplateInterpreter.rangeLimit + 1))
            guard values.count <= TemplateInterpreter.rangeLimit else { throw .render("range() of more than \(TemplateInterpreter.rangeLimit) numbers") }
            return .list(values.map(TemplateValue.int))
        default:
            throw .render("no function \(name)")
        }
    }

    // MARK: - Methods

    static func method(_ name: String, on value: TemplateValue, _ arguments: [TemplateValue], _ keywords: [(String, TemplateValue)]) throws(TemplateError) -> TemplateValue {
        switch value {
        case let .undefined(what):
            throw .render("\(what) is undefined (calling its .\(name)())")
        case let .string(text):
            return try stringMethod(name, text, arguments)
        case let .dictionary(pairs):
            switch name {
            case "items": return .list(pairs.map { .list([.string($0.0), $0.1]) })
            case "keys": return .list(pairs.map { .string($0.0) })
            case "values": return .list(pairs.map(\.1))
            case "get":
                guard case let .string(key)? = arguments.first else { return arguments.count > 1 ? arguments[1] : .none }
                return pairs.first { $0.0 == key }?.1 ?? (arguments.count > 1 ? arguments[1] : .none)
            default: break
            }
        case let .list(items) where name == "count":
            return .int(items.filter { $0 == (arguments.first ?? .none) }.count)
        default:
            break
        }
        throw .render("'\(value.typeName)' object has no method '\(name)'")
    }

    private static func stringMethod(_ name: String, _ text: String, _ arguments: [TemplateValue]) throws(TemplateError) -> TemplateValue {
        func string(_ index: Int) -> String? { if case let .string(value)? = arguments.dropFirst(index).first { value } else { nil } }
        switch name {
        case "strip": return .string(strip(text, string(0), leading: true, trailing: true))
        case "lstrip": return .string(strip(text, string(0), leading: true, trailing: false))
        case "rstrip": return .string(strip(text, string(0), leading: false, trailing: true))
        case "upper": return .string(text.uppercased())
        case "lower": return .string(text.lowercased())
        case "title": return .string(title(text))
        case "capitalize": return .string(capitalize(text))
        case "startswith", "endswith":
            let candidates: [String]
            switch arguments.first {
            case let .string(prefix)?: candidates = [prefix]
            case let .list(items)?: candidates = items.compactMap { if case let .string(value) = $0 { value } else { nil } }
            default: throw .render("\(name)() needs a string")
            }
            let scalars = Array(text.unicodeScalars)
            return .bool(candidates.contains { candidate in
                let part = Array(candidate.unicodeScalars)
                return name == "startswith" ? scalars.starts(with: part) : scalars.reversed().starts(with: part.reversed())
            })
        case "split":
            let limit = arguments.count > 1 ? (arguments[1].integer ?? -1) : -1
            if let separator = string(0) {
                guard !separator.isEmpty else { throw .render("empty separator") }
                var parts = text.components(separatedBy: separator)
                if limit >= 0, parts.count > limit + 1 { parts = Array(parts[..<limit]) + [parts[limit...].joined(separator: separator)] }
                return .list(parts.map(TemplateValue.string))
            }
            return .list(text.split(whereSeparator: { $0.isWhitespace }).map { .string(String($0)) })
        case "replace":
            guard let old = string(0), let new = string(1) else { throw .render("replace() needs two strings") }
            return .string(replace(text, old, new, count: arguments.count > 2 ? arguments[2].integer : nil))
        case "count":
            guard let part = string(0), !part.isEmpty else { throw .render("count() needs a non-empty string") }
            return .int(text.components(separatedBy: part).count - 1)
        case "find":
            guard let part = string(0) else { throw .render("find() needs a string") }
            guard let range = text.range(of: part) else { return .int(-1) }
            return .int(text.unicodeScalars.distance(from: text.unicodeScalars.startIndex, to: range.lowerBound))
        case "join":
            guard case let .list(items)? = arguments.first else { throw .render("join() needs a list") }
            return .string(items.map(\.text).joined(separator: text))
        default:
            throw .render("'str' object has no method '\(name)'")
        }
    }

    // MARK: - Filters

    static func filter(_ name: String, _ value: TemplateValue, _ arguments: [TemplateValue], _ keywords: [(String, TemplateValue)]) throws(TemplateError) -> TemplateValue {
        func keyword(_ key: String, _ position: Int) -> TemplateValue? {
            keywords.first { $0.0 == key }?.1 ?? (arguments.count > position ? arguments[position] : nil)
        }
        switch name {
        case "trim":
            let characters: String? = if case let .string(set)? = keyword("chars", 0) { set } else { nil }
            return .string(strip(value.text, characters, leading: true, trailing: true))
        case "tojson":
            return .string(try value.jsonText(indent: keyword("indent", 0)?.integer))
        case "length", "count":
            switch value {
            case let .string(text): return .int(text.unicodeScalars.count)
            case let .list(items): return .int(items.count)
            case let .dictionary(pairs): return .int(pairs.count)
            case .undefined: return .int(0)
            default: throw .render("object of type '\(value.typeName)' has no len()")
            }
        case "upper": return .string(value.text.uppercased())
        case "lower": return .string(value.text.lowercased())
        case "capitalize": return .string(capitalize(value.text))
        case "title": return .string(title(value.text))
        case "string", "safe": return name == "safe" ? value : .string(value.text)
        case "first", "last":
            let items = try iterate(value)
            return (name == "first" ? items.first : items.last) ?? .undefined("the \(name) item of an empty sequence")
        case "join":
            let separator = keyword("d", 0)?.text ?? ""
            var items = try iterate(value)
            if case let .string(attribute)? = keyword("attribute", 1) { items = try items.map { (item) throws(TemplateError) in try self.attribute(item, attribute) } }
            return .string(items.map(\.text).joined(separator: separator))
        case "select", "reject":
            guard case let .string(test)? = arguments.first else {
                return .list(try iterate(value).filter { $0.isTrue == (name == "select") })
            }
            guard TemplateParser.tests.contains(test) else { throw .render("no test named '\(test)'") }
            var kept: [TemplateValue] = []
            for item in try iterate(value) where try self.test(test, item, Array(arguments.dropFirst())) == (name == "select") { kept.append(item) }
            return .list(kept)
        case "selectattr", "rejectattr":
            guard case let .string(attribute)? = arguments.first else { throw .render("\(name) needs an attribute name") }
            var kept: [TemplateValue] = []
            for item in try iterate(value) {
                let field = try self.attribute(item, attribute)
                let passes: Bool
                if case let .string(test)? = arguments.dropFirst().first {
                    guard TemplateParser.tests.contains(test) else { throw .render("no test named '\(test)'") }
                    passes = try self.test(test, field, Array(arguments.dropFirst(2)))
                } else {
                    passes = field.isTrue
                }
                if passes == (name == "selectattr") { kept.append(item) }
            }
            return .list(kept)
        case "items":
            guard case let .dictionary(pairs) = value else {
                if case .undefined = value { return .list([]) }
                throw .render("items needs a mapping, not \(value.typeName)")
            }
            return .list(pairs.map { .list([.string($0.0), $0.1]) })
        case "map":
            if case let .string(attribute)? = keywords.first(where: { $0.0 == "attribute" })?.1 {
                return .list(try iterate(value).map { (item) throws(TemplateError) in try self.attribute(item, attribute) })
            }
            guard case let .string(filterName)? = arguments.first, TemplateParser.filters.contains(filterName) else {
                throw .render("map needs attribute= or the name of a filter")
            }
            return .list(try iterate(value).map { (item) throws(TemplateError) in try filter(filterName, item, Array(arguments.dropFirst()), []) })
        case "default", "d":
            let fallback = keyword("default_value", 0) ?? .string("")
            let boolean = keyword("boolean", 1)?.isTrue ?? false
            if case .undefined = value { return fallback }
            return boolean && !value.isTrue ? fallback : value
        case "list": return .list(try iterate(value))
        case "reverse":
            if case let .string(text) = value { return .string(String(text.reversed())) }
            return .list(try iterate(value).reversed())
        case "unique":
            var seen: [TemplateValue] = []
            for item in try iterate(value) where !seen.contains(item) { seen.append(item) }
            return .list(seen)
        case "int":
            switch value {
            case let .int(number): return .int(number)
            case let .double(number): return .int(Int(number.rounded(.towardZero)))
            case let .bool(flag): return .int(flag ? 1 : 0)
            case let .string(text): return .int(Int(text.trimmingCharacters(in: .whitespaces)) ?? (keyword("default", 0)?.integer ?? 0))
            default: return keyword("default", 0) ?? .int(0)
            }
        case "float":
            if let number = value.number { return .double(number) }
            if case let .string(text) = value, let number = Double(text.trimmingCharacters(in: .whitespaces)) { return .double(number) }
            return keyword("default", 0) ?? .double(0)
        case "abs":
            switch value {
            case let .int(number): return .int(abs(number))
            case let .double(number): return .double(abs(number))
            default: throw .render("bad operand type for abs(): '\(value.typeName)'")
            }
        case "replace":
            guard case let .string(old)? = arguments.first, case let .string(new)? = arguments.dropFirst().first else { throw .render("replace needs two strings") }
            return .string(replace(value.text, old, new, count: arguments.count > 2 ? arguments[2].integer : nil))
        case "sort", "min", "max":
            let items = try iterate(value)
            var sorted: [TemplateValue] = []
            for item in items {
                var index = sorted.count
                while index > 0, try compare("<", item, sorted[index - 1]) { index -= 1 }
                sorted.insert(item, at: index)
            }
            if keyword("reverse", 0)?.isTrue == true, name == "sort" { sorted.reverse() }
            switch name {
            case "min": return sorted.first ?? .undefined("min of an empty sequence")
            case "max": return sorted.last ?? .undefined("max of an empty sequence")
            default: return .list(sorted)
            }
        case "sum":
            var total = TemplateValue.int(0)
            for item in try iterate(value) { total = try binary("+", total, item) }
            return total
        default:
            throw .render("no filter \(name)")
        }
    }

    /// `item.attribute` for the filters that take an attribute name (dotted paths allowed).
    private static func attribute(_ item: TemplateValue, _ path: String) throws(TemplateError) -> TemplateValue {
        var value = item
        for part in path.split(separator: ".") {
            switch value {
            case let .dictionary(pairs): value = pairs.first { $0.0 == part }?.1 ?? .undefined("'\(part)'")
            case let .namespace(object): value = object.attributes.first { $0.0 == part }?.1 ?? .undefined("'\(part)'")
            case let .list(items): value = Int(part).flatMap { items.indices.contains($0) ? items[$0] : nil } ?? .undefined("'\(part)'")
            case let .undefined(what): throw .render("\(what) is undefined (reading its '\(part)')")
            default: value = .undefined("'\(part)'")
            }
        }
        return value
    }

    // MARK: - Tests

    static func test(_ name: String, _ value: TemplateValue, _ arguments: [TemplateValue]) throws(TemplateError) -> Bool {
        let other = arguments.first ?? .undefined("the test's argument")
        switch name {
        case "defined": if case .undefined = value { return false } else { return true }
        case "undefined": if case .undefined = value { return true } else { return false }
        case "none": return value == .none && !isUndefined(value)
        case "string": if case .string = value { return true } else { return false }
        case "number": return value.number != nil
        case "integer": if case .int = value { return true } else { return false }
        case "float": if case .double = value { return true } else { return false }
        case "boolean": if case .bool = value { return true } else { return false }
        case "true": return value == .bool(true) && isBool(value)
        case "false": return value == .bool(false) && isBool(value)
        case "mapping": if case .dictionary = value { return true } else { return false }
        case "iterable":
            switch value {
            case .list, .string, .dictionary, .undefined: return true
            default: return false
            }
        case "sequence":
            switch value {
            case .list, .string, .dictionary: return true
            default: return false
            }
        case "callable": return false
        case "equalto", "eq", "==", "sameas": return value == other
        case "ne", "!=": return value != other
        case "gt", ">": return try compare(">", value, other)
        case "ge", ">=": return try compare(">=", value, other)
        case "lt", "<": return try compare("<", value, other)
        case "le", "<=": return try compare("<=", value, other)
        case "in": return try compare("in", value, other)
        case "odd", "even":
            guard let number = value.integer else { throw .render("\(name) needs an integer") }
            return (number % 2 != 0) == (name == "odd")
        case "divisibleby":
            guard let number = value.integer, let divisor = other.integer, divisor != 0 else { throw .render("divisibleby needs integers") }
            return number % divisor == 0
        case "lower", "upper":
            let text = value.text
            return name == "lower" ? text == text.lowercased() && text != text.uppercased() : text == text.uppercased() && text != text.lowercased()
        default:
            throw .render("no test \(name)")
        }
    }

    private static func isUndefined(_ value: TemplateValue) -> Bool { if case .undefined = value { true } else { false } }
    private static func isBool(_ value: TemplateValue) -> Bool { if case .bool = value { true } else { false } }

    // MARK: - Operators

    static func binary(_ op: String, _ left: TemplateValue, _ right: TemplateValue) throws(TemplateError) -> TemplateValue {
        if op == "~" { return .string(left.text + right.text) }
        switch (op, left, right) {
        case let ("+", .string(a), .string(b)): return .string(a + b)
        case let ("+", .list(a), .list(b)): return .list(a + b)
        case let ("*", .string(text), count) where count.integer != nil, let ("*", count, .string(text)) where count.integer != nil:
            return .string(String(repeating: text, count: max(count.integer!, 0)))
        case let ("*", .list(items), count) where count.integer != nil:
            return .list(Array(repeating: items, count: max(count.integer!, 0)).flatMap { $0 })
        default: break
        }
        if let a = left.integer, let b = right.integer {
            switch op {
            case "+": return .int(a &+ b)
            case "-": return .int(a &- b)
            case "*": return .int(a &* b)
            case "/": guard b != 0 else { throw .render("division by zero") }; return .double(Double(a) / Double(b))
            case "//": guard b != 0 else { throw .render("division by zero") }; return .int(Int((Double(a) / Double(b)).rounded(.down)))
            case "%": guard b != 0 else { throw .render("modulo by zero") }; return .int(((a % b) + b) % b)
            case "**": return b >= 0 ? .int(Int(pow(Double(a), Double(b)))) : .double(pow(Double(a), Double(b)))
            default: break
            }
        }
        if let a = left.number, let b = right.number {
            switch op {
            case "+": return .double(a + b)
            case "-": return .double(a - b)
            case "*": return .double(a * b)
            case "/": guard b != 0 else { throw .render("division by zero") }; return .double(a / b)
            case "//": guard b != 0 else { throw .render("division by zero") }; return .double((a / b).rounded(.down))
            case "%": guard b != 0 else { throw .render("modulo by zero") }; return .double(a - b * (a / b).rounded(.down))
            case "**": return .double(pow(a, b))
            default: break
            }
        }
        if case let .undefined(what) = left { throw .render("\(what) is undefined (used with \(op))") }
        if case let .undefined(what) = right { throw .render("\(what) is undefined (used with \(op))") }
        throw .render("unsupported operand types for \(op): '\(left.typeName)' and '\(right.typeName)'")
    }

    static func compare(_ op: String, _ left: TemplateValue, _ right: TemplateValue) throws(TemplateError) -> Bool {
        switch op {
        case "==": return left == right
        case "!=": return left != right
        case "in", "not in":
            let contained: Bool
            switch right {
            case let .string(text):
                guard case let .string(part) = left else { throw .render("'in <string>' requires a string, not \(left.typeName)") }
                contained = part.isEmpty || text.contains(part)
            case let .list(items): contained = items.contains(left)
            case let .dictionary(pairs):
                guard case let .string(key) = left else { contained = false; break }
                contained = pairs.contains { $0.0 == key }
            case let .namespace(object):
                guard case let .string(key) = left else { contained = false; break }
                contained = object.attributes.contains { $0.0 == key }
            case .undefined: contained = false
            default: throw .render("argument of type '\(right.typeName)' is not iterable")
            }
            return contained == (op == "in")
        default:
            let order: Bool
            if let a = left.number, let b = right.number {
                order = op == "<" ? a < b : op == "<=" ? a <= b : op == ">" ? a > b : a >= b
            } else if case let .string(a) = left, case let .string(b) = right {
                let (x, y) = (Array(a.unicodeScalars).map(\.value), Array(b.unicodeScalars).map(\.value))
                order = op == "<" ? x.lexicographicallyPrecedes(y) : op == "<=" ? !y.lexicographicallyPrecedes(x)
                    : op == ">" ? y.lexicographicallyPrecedes(x) : !x.lexicographicallyPrecedes(y)
            } else {
                throw .render("'\(op)' not supported between '\(left.typeName)' and '\(right.typeName)'")
            }
            return order
        }
    }

    // MARK: - Python string helpers

    /// `str.strip(chars)`: whitespace (Python's definition) when `characters` is nil.
    static func strip(_ text: String, _ characters: String?, leading: Bool, trailing: Bool) -> String {
        let set = characters.map { Set($0.unicodeScalars) }
        func strippable(_ scalar: Unicode.Scalar) -> Bool { set?.contains(scalar) ?? scalar.properties.isWhitespace }
        var scalars = Substring(text).unicodeScalars[...]
        if leading { while let first = scalars.first, strippable(first) { scalars.removeFirst() } }
        if trailing { while let last = scalars.last, strippable(last) { scalars.removeLast() } }
        return String(String.UnicodeScalarView(scalars))
    }

    private static func capitalize(_ text: String) -> String {
        guard let first = text.first else { return text }
        return String(first).uppercased() + text.dropFirst().lowercased()
    }

    private static func title(_ text: String) -> String {
        var result = ""
        var previousIsLetter = false
        for character in text {
            result += previousIsLetter ? character.lowercased() : character.uppercased()
            previousIsLetter = character.isLetter
        }
        return result
    }

    private static func replace(_ text: String, _ old: String, _ new: String, count: Int?) -> String {
        guard let count, count >= 0 else { return text.replacingOccurrences(of: old, with: new) }
        var result = text
        var replaced = 0
        var searchStart = result.startIndex
        while replaced < count, let range = result.range(of: old, range: searchStart..<result.endIndex) {
            result.replaceSubrange(range, with: new)
            searchStart = result.index(range.lowerBound, offsetBy: new.count)
            replaced += 1
        }
        return result
    }
}
