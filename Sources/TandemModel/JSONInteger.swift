import Foundation

/// Integers read from JSON (config.json, safetensors headers) exactly: `JSONSerialization` gives an `NSNumber`
/// whose `intValue` silently truncates 1.5 and wraps 1e30, so every integer field goes through here instead.
enum JSONInteger {
    /// `value` when it is a number that is exactly an integer Int can hold (not 1.5, not 2**70 rounded, not
    /// `true`); nil otherwise.
    static func exact(_ value: Any?) -> Int? {
        guard let number = value as? NSNumber, String(cString: number.objCType) != "c",
            let integer = Int(exactly: number.int64Value), NSNumber(value: integer) == number
        else { return nil }
        return integer
    }
}
