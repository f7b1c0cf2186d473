/// Builds the syntax tree, refusing at once (with the line) every construct the interpreter does not implement:
/// macros, includes, blocks, unknown filters, tests, functions and methods.
struct TemplateParser {
    static let filters: Set<String> = [
        "trim", "tojson", "length", "count", "upper", "lower", "string", "first", "last", "join", "reject", "select",
        "rejectattr", "selectattr", "items", "map", "default", "d", "list", "int", "float", "capitalize", "title",
        "replace", "abs", "unique", "safe", "reverse", "sort", "min", "max", "sum",
    ]
    static let tests: Set<String> = [
        "defined", "undefined", "none", "string", "number", "integer", "float", "boolean", "mapping", "iterable",
        "sequence", "true", "false", "equalto", "eq", "==", "ne", "!=", "odd", "even", "divisibleby", "in", "lower", "upper",
        "sameas", "callable", "gt", "ge", "lt", "le", ">", ">=", "<", "<=",
    ]
    static let functions: Set<String> = ["raise_exception", "namespace", "range", "dict"]
    static let methods: Set<String> = [
        "strip", "lstrip", "rstrip", "startswith", "endswith", "split", "upper", "lower", "title", "capitalize", "replace",
        "items", "keys", "values", "get", "count", "find", "join",
    ]

    private let segments: [TemplateLexer.Segment]
    private var position = 0
    private var tokens: [TemplateLexer.Token] = []
    private var cursor = 0
    private var line = 1

    static func parse(_ source: String) throws(TemplateError) -> [TemplateNode] {
        var parser = TemplateParser(segments: try TemplateLexer.segments(source))
        return try parser.body(until: []).0
    }

    private init(segments: [TemplateLexer.Segment]) { self.segments = segments }

    // MARK: - Statements

    /// Nodes up to one of the `until` keywords (returned, its tag consumed) or the end (nil).
    private mutating func body(until: Set<String>) throws(TemplateError) -> ([TemplateNode], String?) {
        var nodes: [TemplateNode] = []
        while position < segments.count {
            let segment = segments[position]
            position += 1
            switch segment {
            case let .text(text):
                nodes.append(.text(text))
            case let .output(tokens, line):
                begin(tokens, line: line)
                nodes.append(.output(try expression()))
                try end()
            case let .statement(tokens, line):
                begin(tokens, line: line)
                guard case let .name(keyword)? = next() else { throw error("a tag without a statement") }
                if until.contains(keyword) { return (nodes, keyword) }
                nodes.append(try statement(keyword))
            }
        }
        guard until.isEmpty else { throw .syntax(line: line, detail: "missing {% \(until.sorted().last!) %}") }
        return (nodes, nil)
    }

    private mutating func statement(_ keyword: String) throws(TemplateError) -> TemplateNode {
        switch keyword {
        case "if":
            var branches = [(try expression(), [TemplateNode]())]
            try end()
            while true {
                let (nodes, closing) = try body(until: ["elif", "else", "endif"])
                branches[branches.count - 1].1 = nodes
                switch closing {
                case "elif":
                    branches.append((try expression(), []))
                    try end()
                case "else":
                    try end()
                    let (otherwise, _) = try body(until: ["endif"])
                    try end()
                    return .branch(branches, otherwise: otherwise)
                default:
                    try end()
                    return .branch(branches, otherwise: [])
                }
            }
        case "for":
            var targets = [try name()]
            while accept(",") { targets.append(try name()) }
            guard accept("in") else { throw error("expected 'in' in a for loop") }
            let items = try expression(allowConditional: false)
            let condition = accept("if") ? try expression(allowConditional: false) : nil
            if case .name("recursive")? = peek() { throw error("recursive loops are not supported") }
            try end()
            let (nodes, closing) = try body(until: ["else", "endfor"])
            try end()
            var empty: [TemplateNode] = []
            if closing == "else" {
                (empty, _) = try body(until: ["endfor"])
                try end()
            }
            return .loop(targets: targets, items: items, condition: condition, body: nodes, empty: empty)
        case "set":
            var names = [try name()]
            var attribute: String?
            if accept(".") {
                attribute = try name()
            } else {
                while accept(",") { names.append(try name()) }
            }
            guard accept("=") else { throw error("{% set %} blocks are not supported (only {% set name = value %})") }
            let value = try expression()
            try end()
            return .assign(names: names, attribute: attribute, value: value)
        case "break":
            try end()
            return .breakLoop
        case "continue":
            try end()
            return .continueLoop
        case "endif", "endfor", "elif", "else":
            throw error("unexpected {% \(keyword) %}")
        default:
            throw error("the {% \(keyword) %} statement is not supported")
        }
    }

    // MARK: - Expressions (Jinja's precedence, lowest first)

    private mutating func expression(allowConditional: Bool = true) throws(TemplateError) -> TemplateExpression {
        var value = try or()
        while allowConditional, accept("if") {
            let condition = try or()
            let otherwise = accept("else") ? try expression() : nil
            value = .conditional(value, condition: condition, otherwise: otherwise)
        }
        return value
    }

    private mutating func or() throws(TemplateError) -> TemplateExpression {
        var value = try and()
        while accept("or") { value = .or(value, try and()) }
        return value
    }

    private mutating func and() throws(TemplateError) -> TemplateExpression {
        var value = try not()
        while accept("and") { value = .and(value, try not()) }
        return value
    }

    private mutating func not() throws(TemplateError) -> TemplateExpression {
        if accept("not") { return .not(try not()) }
        return try compare()
    }

    private mutating func compare() throws(TemplateError) -> TemplateExpression {
        let first = try math1()
        var operations: [(String, TemplateExpression)] = []
        while true {
            if case let .symbol(op)? = peek(), ["==", "!=", "<", "<=", ">", ">="].contains(op) {
                cursor += 1
                operations.append((op, try math1()))
            } else if accept("in") {
                operations.append(("in", try math1()))
            } else if case .name("not")? = peek(), case .name("in")? = peek(1) {
                cursor += 2
                operations.append(("not in", try math1()))
            } else {
                break
            }
        }
        return operations.isEmpty ? first : .compare(first, operations)
    }

    private mutating func math1() throws(TemplateError) -> TemplateExpression {
        var value = try concat()
        while case let .symbol(op)? = peek(), op == "+" || op == "-" {
            cursor += 1
            value = .binary(op, value, try concat())
        }
        return value
    }

    private mutating func concat() throws(TemplateError) -> TemplateExpression {
        var value = try math2()
        while accept("~") { value = .binary("~", value, try math2()) }
        return value
    }

    private mutating func math2() throws(TemplateError) -> TemplateExpression {
        var value = try power()
        while case let .symbol(op)? = peek(), ["*", "/", "//", "%"].contains(op) {
            cursor += 1
            value = .binary(op, value, try power())
        }
        return value
    }

    private mutating func power() throws(TemplateError) -> TemplateExpression {
        var value = try unary()
        while accept("**") { value = .binary("**", value, try unary()) }
        return value
    }

    private mutating func unary(filters: Bool = true) throws(TemplateError) -> TemplateExpression {
        var value: TemplateExpression
        if accept("-") {
            value = .negate(try unary(filters: false))
        } else if accept("+") {
            value = try unary(filters: false)
        } else {
            value = try postfix(try primary())
        }
        if filters { value = try filtersAndTests(value) }
        return value
    }

    private mutating func primary() throws(TemplateError) -> TemplateExpression {
        guard let token = next() else { throw error("an expression ends too soon") }
        switch token {
        case let .string(text):
            var joined = text
            while case let .string(more)? = peek() {  // adjacent literals concatenate, as in Python
                joined += more
                cursor += 1
            }
            return .literal(.string(joined))
        case let .int(value): return .literal(.int(value))
        case let .double(value): return .literal(.double(value))
        case let .name(name):
            switch name {
            case "true", "True": return .literal(.bool(true))
            case "false", "False": return .literal(.bool(false))
            case "none", "None": return .literal(.none)
            default: return .variable(name)
            }
        case .symbol("("):
            if accept(")") { return .tuple([]) }
            let first = try expression()
            if accept(")") { return first }
            var items = [first]
            while accept(",") {
                if case .symbol(")")? = peek() { break }
                items.append(try expression())
            }
            try expect(")")
            return .tuple(items)
        case .symbol("["):
            var items: [TemplateExpression] = []
            while !accept("]") {
                items.append(try expression())
                if !accept(",") { try expect("]"); break }
            }
            return .list(items)
        case .symbol("{"):
            var pairs: [(TemplateExpression, TemplateExpression)] = []
            while !accept("}") {
                let key = try expression()
                try expect(":")
                pairs.append((key, try expression()))
                if !accept(",") { try expect("}"); break }
            }
            return .dictionary(pairs)
        default:
            throw error("unexpected \(describe(token))")
        }
    }

    private mutating func postfix(_ start: TemplateExpression) throws(TemplateError) -> TemplateExpression {
        var value = start
        while true {
            if accept(".") {
                guard case let .name(attribute)? = next() else { throw error("expected a name after '.'") }
                value = .attribute(value, attribute)
            } else if accept("[") {
                value = try subscriptOrSlice(value)
            } else if case .symbol("(")? = peek() {
                cursor += 1
                let (arguments, keywords) = try callArguments()
                switch value {
                case let .variable(name) where Self.functions.contains(name): break
                case let .attribute(_, method) where Self.methods.contains(method): break
                case let .variable(name): throw error("calls \(name)(), which Tandem's chat templates do not provide")
                case let .attribute(_, method): throw error("calls the method .\(method)(), which Tandem's chat templates do not provide")
                default: throw error("calls something that is not a function")
                }
                value = .call(value, arguments, keywords)
            } else {
                return value
            }
        }
    }

    private mutating func subscriptOrSlice(_ value: TemplateExpression) throws(TemplateError) -> TemplateExpression {
        var parts: [TemplateExpression?] = [nil]
        var isSlice = false
        while !accept("]") {
            if accept(":") {
                isSlice = true
                parts.append(nil)
                continue
            }
            guard parts[parts.count - 1] == nil else { throw error("expected ']'") }
            parts[parts.count - 1] = try expression()
        }
        if !isSlice {
            guard let index = parts[0] else { throw error("an empty subscript") }
            return .item(value, index)
        }
        guard parts.count <= 3 else { throw error("a slice with more than two ':'") }
        return .slice(value, start: parts[0], stop: parts.count > 1 ? parts[1] : nil, step: parts.count > 2 ? parts[2] : nil)
    }

    private mutating func callArguments() throws(TemplateError) -> ([TemplateExpression], [(String, TemplateExpression)]) {
        var arguments: [TemplateExpression] = []
        var keywords: [(String, TemplateExpression)] = []
        while !accept(")") {
            if case let .name(key)? = peek(), case .symbol("=")? = peek(1) {
                cursor += 2
                keywords.append((key, try expression()))
            } else {
                arguments.append(try expression())
            }
            if !accept(",") { try expect(")"); break }
        }
        return (arguments, keywords)
    }

    private mutating func filtersAndTests(_ start: TemplateExpression) throws(TemplateError) -> TemplateExpression {
        var value = start
        while true {
            if accept("|") {
                let filter = try name()
                guard Self.filters.contains(filter) else { throw error("uses the filter '\(filter)', which Tandem's chat templates do not provide") }
                var arguments: [TemplateExpression] = []
                var keywords: [(String, TemplateExpression)] = []
                if accept("(") { (arguments, keywords) = try callArguments() }
                value = .filter(value, filter, arguments, keywords)
            } else if accept("is") {
                let negated = accept("not")
                var test: String
                switch next() {
                case let .name(word)?: test = word
                case let .symbol(symbol)? where ["==", "!=", "<", "<=", ">", ">="].contains(symbol): test = symbol
                default: throw error("expected a test name after 'is'")
                }
                if test == "none" || test == "true" || test == "false" { test = test.lowercased() }
                guard Self.tests.contains(test) else { throw error("uses the test '\(test)', which Tandem's chat templates do not provide") }
                var arguments: [TemplateExpression] = []
                if accept("(") {
                    (arguments, _) = try callArguments()
                } else if let token = peek(), startsPrimary(token) {
                    arguments = [try postfix(try primary())]
                }
                value = .test(value, test, arguments, negated: negated)
            } else {
                return value
            }
        }
    }

    /// Whether a test's single argument may follow without parentheses (`x is divisibleby 3`).
    private func startsPrimary(_ token: TemplateLexer.Token) -> Bool {
        switch token {
        case .string, .int, .double: true
        case let .name(word): !["and", "or", "not", "in", "is", "if", "else"].contains(word)
        case .symbol("("), .symbol("["), .symbol("{"): false
        default: false
        }
    }

    // MARK: - Tokens

    private mutating func begin(_ tokens: [TemplateLexer.Token], line: Int) {
        self.tokens = tokens
        cursor = 0
        self.line = line
    }

    private func peek(_ ahead: Int = 0) -> TemplateLexer.Token? {
        cursor + ahead < tokens.count ? tokens[cursor + ahead] : nil
    }

    private mutating func next() -> TemplateLexer.Token? {
        defer { cursor += 1 }
        return peek()
    }

    /// Consumes the keyword or symbol `word` if it is next.
    private mutating func accept(_ word: String) -> Bool {
        switch peek() {
        case .name(word)?, .symbol(word)?:
            cursor += 1
            return true
        default:
            return false
        }
    }

    private mutating func expect(_ symbol: String) throws(TemplateError) {
        guard accept(symbol) else { throw error("expected '\(symbol)'" + (peek().map { ", found \(describe($0))" } ?? " at the end of the tag")) }
    }

    private mutating func name() throws(TemplateError) -> String {
        guard case let .name(name)? = next() else { throw error("expected a name") }
        return name
    }

    private func end() throws(TemplateError) {
        if let extra = peek() { throw error("unexpected \(describe(extra)) at the end of the tag") }
    }

    private func describe(_ token: TemplateLexer.Token) -> String {
        switch token {
        case let .name(name): "'\(name)'"
        case let .string(text): "the string \(pythonStringRepr(text))"
        case let .int(value): "\(value)"
        case let .double(value): "\(value)"
        case let .symbol(symbol): "'\(symbol)'"
        }
    }

    private func error(_ detail: String) -> TemplateError { .syntax(line: line, detail: detail) }
}
