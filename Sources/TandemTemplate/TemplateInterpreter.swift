/// Renders a parsed template: Jinja's scoping (a loop's body is a scope of its own, so `set` inside a loop does
/// not leak out — templates use `namespace` for that), Python's operators and truthiness, and the filters,
/// tests, functions and methods the parser admits.
struct TemplateInterpreter {
    private enum Flow { case normal, breakLoop, continueLoop }

    /// Variables by scope, innermost last.
    private var scopes: [[String: TemplateValue]]
    private var output = ""
    private var iterations = 0
    /// Largest list `range` may build.
    static let rangeLimit = 1 << 20
    /// Loop iterations one rendering may run, and characters it may write: a template (or a conversation) that
    /// would run away is stopped with an error, not left to hang a server thread.
    static let iterationLimit = 10_000_000
    static let outputLimit = 64 << 20

    static func render(_ nodes: [TemplateNode], context: [String: TemplateValue]) throws(TemplateError) -> String {
        var interpreter = TemplateInterpreter(scopes: [context, [:]])
        _ = try interpreter.run(nodes)
        return interpreter.output
    }

    private init(scopes: [[String: TemplateValue]]) { self.scopes = scopes }

    private mutating func run(_ nodes: [TemplateNode]) throws(TemplateError) -> Flow {
        for node in nodes {
            switch node {
            case let .text(text):
                try write(text)
            case let .output(expression):
                try write(try evaluate(expression).text)
            case let .branch(branches, otherwise):
                var taken: [TemplateNode]? = nil
                for (condition, body) in branches where try evaluate(condition).isTrue {
                    taken = body
                    break
                }
                let flow = try run(taken ?? otherwise)
                if flow != .normal { return flow }
            case let .loop(targets, itemsExpression, condition, body, empty):
                try loop(targets: targets, items: try iterate(try evaluate(itemsExpression)), condition: condition, body: body, empty: empty)
            case let .assign(names, attribute, valueExpression):
                let value = try evaluate(valueExpression)
                if let attribute {
                    guard case let .namespace(object) = lookUp(names[0]) else {
                        throw .render("cannot set \(names[0]).\(attribute): \(names[0]) is not a namespace")
                    }
                    if let index = object.attributes.firstIndex(where: { $0.0 == attribute }) {
                        object.attributes[index].1 = value
                    } else {
                        object.attributes.append((attribute, value))
                    }
                } else if names.count == 1 {
                    scopes[scopes.count - 1][names[0]] = value
                } else {
                    let parts = try iterate(value)
                    guard parts.count == names.count else { throw .render("cannot unpack \(parts.count) values into \(names.count) names") }
                    for (name, part) in zip(names, parts) { scopes[scopes.count - 1][name] = part }
                }
            case .breakLoop:
                return .breakLoop
            case .continueLoop:
                return .continueLoop
            }
        }
        return .normal
    }

    private mutating func loop(
        targets: [String], items all: [TemplateValue], condition: TemplateExpression?, body: [TemplateNode], empty: [TemplateNode]
    ) throws(TemplateError) {
        var items = all
        if let condition {
            items = []
            for item in all {
                scopes.append(try bind(targets, to: item))
                defer { scopes.removeLast() }
                if try evaluate(condition).isTrue { items.append(item) }
            }
        }
        if items.isEmpty {
            _ = try run(empty)
            return
        }
        for (index, item) in items.enumerated() {
            iterations += 1
            guard iterations <= Self.iterationLimit else { throw .render("the template ran more than \(Self.iterationLimit) loop iterations") }
            var scope = try bind(targets, to: item)
            scope["loop"] = .dictionary([
                ("index", .int(index + 1)), ("index0", .int(index)), ("revindex", .int(items.count - index)),
                ("revindex0", .int(items.count - index - 1)), ("first", .bool(index == 0)), ("last", .bool(index == items.count - 1)),
                ("length", .int(items.count)), ("previtem", index > 0 ? items[index - 1] : .undefined("loop.previtem")),
                ("nextitem", index + 1 < items.count ? items[index + 1] : .undefined("loop.nextitem")),
            ])
            scopes.append(scope)
            let flow = try run(body)
            scopes.removeLast()
            if flow == .breakLoop { break }
        }
    }

    private mutating func write(_ text: String) throws(TemplateError) {
        output += text
        guard output.utf8.count <= Self.outputLimit else { throw .render("the template wrote more than \(Self.outputLimit) bytes") }
    }

    private func bind(_ targets: [String], to item: TemplateValue) throws(TemplateError) -> [String: TemplateValue] {
        if targets.count == 1 { return [targets[0]: item] }
        let parts = try iterate(item)
        guard parts.count == targets.count else { throw .render("cannot unpack \(parts.count) values into \(targets.count) loop variables") }
        return Dictionary(uniqueKeysWithValues: zip(targets, parts))
    }

    private func lookUp(_ name: String) -> TemplateValue {
        for scope in scopes.reversed() { if let value = scope[name] { return value } }
        return .undefined(name)
    }

    // MARK: - Expressions

    private func evaluate(_ expression: TemplateExpression) throws(TemplateError) -> TemplateValue {
        switch expression {
        case let .literal(value):
            return value
        case let .variable(name):
            return lookUp(name)
        case let .list(items), let .tuple(items):
            var values: [TemplateValue] = []
            for item in items { values.append(try evaluate(item)) }
            return .list(values)
        case let .dictionary(pairs):
            var result: [(String, TemplateValue)] = []
            for (keyExpression, valueExpression) in pairs {
                guard case let .string(key) = try evaluate(keyExpression) else { throw .render("dictionary keys must be strings") }
                let value = try evaluate(valueExpression)
                if let index = result.firstIndex(where: { $0.0 == key }) { result[index].1 = value } else { result.append((key, value)) }
            }
            return .dictionary(result)
        case let .attribute(base, name):
            return try attribute(name, of: try evaluate(base), written: expression)
        case let .item(base, key):
            return try item(try evaluate(key), of: try evaluate(base))
        case let .slice(base, start, stop, step):
            return try slice(try evaluate(base), start: start.map(evaluate), stop: stop.map(evaluate), step: step.map(evaluate))
        case let .call(callee, arguments, keywords):
            var values: [TemplateValue] = []
            for argument in arguments { values.append(try evaluate(argument)) }
            var named: [(String, TemplateValue)] = []
            for (key, argument) in keywords { named.append((key, try evaluate(argument))) }
            if case let .attribute(base, method) = callee {
                return try TemplateBuiltins.method(method, on: try evaluate(base), values, named)
            }
            guard case let .variable(function) = callee else { throw .render("not callable") }
            return try TemplateBuiltins.function(function, values, named)
        case let .filter(base, name, arguments, keywords):
            var values: [TemplateValue] = []
            for argument in arguments { values.append(try evaluate(argument)) }
            var named: [(String, TemplateValue)] = []
            for (key, argument) in keywords { named.append((key, try evaluate(argument))) }
            return try TemplateBuiltins.filter(name, try evaluate(base), values, named)
        case let .test(base, name, arguments, negated):
            var values: [TemplateValue] = []
            for argument in arguments { values.append(try evaluate(argument)) }
            return .bool(try TemplateBuiltins.test(name, try evaluate(base), values) != negated)
        case let .negate(operand):
            switch try evaluate(operand) {
            case let .int(value): return .int(-value)
            case let .double(value): return .double(-value)
            case let .bool(value): return .int(value ? -1 : 0)
            case let other: throw .render("bad operand type for unary -: '\(other.typeName)'")
            }
        case let .not(operand):
            return .bool(!(try evaluate(operand).isTrue))
        case let .and(left, right):
            let value = try evaluate(left)
            return value.isTrue ? try evaluate(right) : value
        case let .or(left, right):
            let value = try evaluate(left)
            return value.isTrue ? value : try evaluate(right)
        case let .binary(op, left, right):
            return try TemplateBuiltins.binary(op, try evaluate(left), try evaluate(right))
        case let .compare(first, operations):
            var left = try evaluate(first)
            for (op, rightExpression) in operations {
                let right = try evaluate(rightExpression)
                guard try TemplateBuiltins.compare(op, left, right) else { return .bool(false) }
                left = right
            }
            return .bool(true)
        case let .conditional(value, condition, otherwise):
            if try evaluate(condition).isTrue { return try evaluate(value) }
            return try otherwise.map(evaluate) ?? .undefined("the else of a conditional expression")
        }
    }

    private func attribute(_ name: String, of value: TemplateValue, written: TemplateExpression) throws(TemplateError) -> TemplateValue {
        switch value {
        case let .undefined(what):
            throw .render("\(what) is undefined (reading its '\(name)')")
        case let .dictionary(pairs):
            return pairs.first { $0.0 == name }?.1 ?? .undefined("'\(name)'")
        case let .namespace(object):
            return object.attributes.first { $0.0 == name }?.1 ?? .undefined("'\(name)'")
        default:
            return .undefined("'\(value.typeName)' object's '\(name)'")
        }
    }

    private func item(_ key: TemplateValue, of value: TemplateValue) throws(TemplateError) -> TemplateValue {
        switch (value, key) {
        case let (.undefined(what), _):
            throw .render("\(what) is undefined (reading its item \(key.representation))")
        case let (.dictionary(pairs), .string(name)):
            return pairs.first { $0.0 == name }?.1 ?? .undefined("'\(name)'")
        case let (.namespace(object), .string(name)):
            return object.attributes.first { $0.0 == name }?.1 ?? .undefined("'\(name)'")
        case let (.list(items), _):
            guard let index = key.integer else { throw .render("list indices must be integers, not \(key.typeName)") }
            let position = index < 0 ? items.count + index : index
            return items.indices.contains(position) ? items[position] : .undefined("list index \(index)")
        case let (.string(text), _):
            guard let index = key.integer else { throw .render("string indices must be integers, not \(key.typeName)") }
            let scalars = Array(text.unicodeScalars)
            let position = index < 0 ? scalars.count + index : index
            return scalars.indices.contains(position) ? .string(String(scalars[position])) : .undefined("string index \(index)")
        default:
            return .undefined("item \(key.representation) of a \(value.typeName)")
        }
    }

    private func slice(_ value: TemplateValue, start: TemplateValue?, stop: TemplateValue?, step: TemplateValue?) throws(TemplateError) -> TemplateValue {
        func bound(_ value: TemplateValue?) throws(TemplateError) -> Int? {
            guard let value, value != .none else { return nil }
            guard let integer = value.integer else { throw .render("slice indices must be integers") }
            return integer
        }
        let stride = try bound(step) ?? 1
        guard stride != 0 else { throw .render("slice step cannot be zero") }
        func indices(_ count: Int) throws(TemplateError) -> [Int] {
            func clamp(_ index: Int?, _ fallback: Int) -> Int {
                guard var index else { return fallback }
                if index < 0 { index += count }
                return stride > 0 ? min(max(index, 0), count) : min(max(index, -1), count - 1)
            }
            let first = clamp(try bound(start), stride > 0 ? 0 : count - 1)
            let last = clamp(try bound(stop), stride > 0 ? count : -1)
            return Array(Swift.stride(from: first, to: last, by: stride))
        }
        switch value {
        case let .list(items):
            return .list(try indices(items.count).map { items[$0] })
        case let .string(text):
            let scalars = Array(text.unicodeScalars)
            return .string(String(String.UnicodeScalarView(try indices(scalars.count).map { scalars[$0] })))
        case let .undefined(what):
            throw .render("\(what) is undefined (slicing it)")
        default:
            throw .render("a \(value.typeName) cannot be sliced")
        }
    }
}

/// The items a `for` loop or an unpacking walks: a list's elements, a string's characters, a dictionary's keys.
func iterate(_ value: TemplateValue) throws(TemplateError) -> [TemplateValue] {
    switch value {
    case let .list(items): return items
    case let .string(text): return text.unicodeScalars.map { .string(String($0)) }
    case let .dictionary(pairs): return pairs.map { .string($0.0) }
    case .undefined: return []
    default: throw .render("'\(value.typeName)' object is not iterable")
    }
}

extension TemplateValue {
    /// An integer value (booleans count, as in Python).
    var integer: Int? {
        switch self {
        case let .int(value): value
        case let .bool(value): value ? 1 : 0
        default: nil
        }
    }
}
