import TandemTemplate

/// Typed reads of a JSON request body's fields: each read names the field in its error, `null` is the same as
/// absent (as OpenAI's API treats it), and `finish()` refuses any field no read asked for, naming it — an
/// unknown or misspelt parameter is an error, as OpenAI's API makes it, never silently ignored.
struct RequestFields {
    private let pairs: [(String, TemplateValue)]
    private var read: Set<String> = []

    /// - Throws: `APIError` (400) when the body is not a JSON object.
    init(_ body: TemplateValue) throws(APIError) {
        guard case let .dictionary(pairs) = body else { throw .invalid(nil, "the request body must be a JSON object") }
        self.pairs = pairs
    }

    /// The raw value of `name`; nil when absent or null.
    mutating func value(_ name: String) -> TemplateValue? {
        read.insert(name)
        guard let value = pairs.first(where: { $0.0 == name })?.1, value != .none else { return nil }
        return value
    }

    mutating func string(_ name: String) throws(APIError) -> String? {
        guard let value = value(name) else { return nil }
        guard case let .string(text) = value else { throw .invalid(name, "\(name) must be a string, got \(value.typeName)") }
        return text
    }

    mutating func bool(_ name: String) throws(APIError) -> Bool? {
        guard let value = value(name) else { return nil }
        guard case let .bool(flag) = value else { throw .invalid(name, "\(name) must be true or false, got \(value.typeName)") }
        return flag
    }

    mutating func integer(_ name: String, in range: ClosedRange<Int>) throws(APIError) -> Int? {
        guard let value = value(name) else { return nil }
        guard case let .int(number) = value else { throw .invalid(name, "\(name) must be an integer, got \(value.typeName)") }
        guard range.contains(number) else { throw .invalid(name, "\(name) must be in \(range.lowerBound)...\(range.upperBound), got \(number)") }
        return number
    }

    mutating func number(_ name: String, in range: ClosedRange<Double>) throws(APIError) -> Double? {
        guard let value = value(name) else { return nil }
        let number: Double
        switch value {
        case let .int(integer): number = Double(integer)
        case let .double(real): number = real
        default: throw .invalid(name, "\(name) must be a number, got \(value.typeName)")
        }
        guard range.contains(number) else { throw .invalid(name, "\(name) must be in \(range.lowerBound)...\(range.upperBound), got \(number)") }
        return number
    }

    /// A string or a list of strings (OpenAI's `stop`).
    mutating func strings(_ name: String) throws(APIError) -> [String]? {
        guard let value = value(name) else { return nil }
        switch value {
        case let .string(text): return [text]
        case let .list(items):
            var texts: [String] = []
            for item in items {
                guard case let .string(text) = item else { throw .invalid(name, "\(name) must be a string or a list of strings") }
                texts.append(text)
            }
            return texts
        default: throw .invalid(name, "\(name) must be a string or a list of strings, got \(value.typeName)")
        }
    }

    mutating func integers(_ name: String) throws(APIError) -> [Int]? {
        guard let value = value(name) else { return nil }
        guard case let .list(items) = value else { throw .invalid(name, "\(name) must be a list of integers, got \(value.typeName)") }
        var numbers: [Int] = []
        for item in items {
            guard case let .int(number) = item else { throw .invalid(name, "\(name) must be a list of integers") }
            numbers.append(number)
        }
        return numbers
    }

    /// Accepts a parameter Tandem does not implement only at its no-op value (`presence_penalty: 0`), so a
    /// request never silently loses what it asked for.
    mutating func unsupported(_ name: String, unless isNeutral: (TemplateValue) -> Bool) throws(APIError) {
        guard let value = value(name), !isNeutral(value) else { return }
        throw .invalid(name, "\(name) is not supported by Tandem (got \(value.representationForError))")
    }

    /// - Throws: `APIError` (400) naming the first field no read asked for.
    func finish() throws(APIError) {
        if let unknown = pairs.first(where: { !read.contains($0.0) }) {
            throw .invalid(unknown.0, "unrecognized request argument: \(unknown.0)")
        }
    }
}

extension TemplateValue {
    /// A short rendering of a value for an error message.
    var representationForError: String {
        let text = (try? jsonText()) ?? text
        return text.count > 80 ? String(text.prefix(77)) + "..." : text
    }
}
