/// The element types a `Tensor` can hold.
///
/// Raw values are stable: they travel in the communication library's wire header.
public enum DType: UInt8, Sendable, CaseIterable, Codable, CustomStringConvertible {
    case float32 = 1
    case float16 = 2
    case bfloat16 = 3
    case int8 = 4
    case int32 = 5
    case int64 = 6

    /// Bytes per element.
    @inlinable
    public var byteSize: Int {
        switch self {
        case .int8: 1
        case .float16, .bfloat16: 2
        case .float32, .int32: 4
        case .int64: 8
        }
    }

    /// Whether the type is a floating-point type.
    public var isFloatingPoint: Bool {
        switch self {
        case .float32, .float16, .bfloat16: true
        case .int8, .int32, .int64: false
        }
    }

    /// The lower-case name used on command lines and in JSON (`float32`, `bfloat16` …).
    public var description: String {
        switch self {
        case .float32: "float32"
        case .float16: "float16"
        case .bfloat16: "bfloat16"
        case .int8: "int8"
        case .int32: "int32"
        case .int64: "int64"
        }
    }

    /// Parses a name as printed by `description`; also accepts the short forms `f32`, `fp16`, `bf16`, `i8` ….
    public init?(name: String) {
        switch name.lowercased() {
        case "float32", "f32", "fp32", "float": self = .float32
        case "float16", "f16", "fp16", "half": self = .float16
        case "bfloat16", "bf16": self = .bfloat16
        case "int8", "i8": self = .int8
        case "int32", "i32": self = .int32
        case "int64", "i64", "long": self = .int64
        default: return nil
        }
    }
}
