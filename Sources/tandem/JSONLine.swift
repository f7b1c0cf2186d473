import Foundation

/// `value` as one line of JSON with sorted keys — what every `--json` flag prints.
func jsonLine<Value: Encodable>(_ value: Value) throws -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    return String(decoding: try encoder.encode(value), as: UTF8.self)
}
