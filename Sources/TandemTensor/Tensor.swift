/// A dense, contiguous, row-major tensor over storage it owns.
///
/// `Tensor` is a reference type, like a `torch.Tensor`: collectives write into it in place, and an
/// asynchronous operation may hold it until its `Work` completes. Reading and writing one tensor from two
/// threads at once is the caller's race, as it is in PyTorch.
public final class Tensor: @unchecked Sendable {
    /// The element type.
    public let dtype: DType
    /// The extent of each dimension; empty for a scalar.
    public let shape: [Int]
    /// The number of elements (product of `shape`; 1 for a scalar).
    public let count: Int
    /// The start of the elements, aligned to 64 bytes.
    public let baseAddress: UnsafeMutableRawPointer

    /// Creates a zero-filled tensor.
    ///
    /// - Parameters:
    ///   - shape: the extent of each dimension; every extent must be ≥ 0.
    ///   - dtype: the element type.
    public init(zeros shape: [Int], dtype: DType) {
        precondition(shape.allSatisfy { $0 >= 0 }, "tensor extents must be non-negative, got \(shape)")
        self.dtype = dtype
        self.shape = shape
        self.count = shape.reduce(1, *)
        let bytes = max(count * dtype.byteSize, 1)
        baseAddress = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
        baseAddress.initializeMemory(as: UInt8.self, repeating: 0, count: bytes)
    }

    /// Creates a one-dimensional `float32` tensor holding `values`.
    public convenience init(_ values: [Float], shape: [Int]? = nil) {
        self.init(zeros: shape ?? [values.count], dtype: .float32)
        precondition(count == values.count, "shape \(self.shape) holds \(count) elements, not \(values.count)")
        values.withUnsafeBytes { baseAddress.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
    }

    /// Creates a tensor of `dtype` from `Double` values, converting each (rounding to nearest even for the
    /// float types, truncating toward zero for the integer types).
    public convenience init(converting values: [Double], shape: [Int]? = nil, dtype: DType) {
        self.init(zeros: shape ?? [values.count], dtype: dtype)
        precondition(count == values.count, "shape \(self.shape) holds \(count) elements, not \(values.count)")
        for (index, value) in values.enumerated() { setElement(index, value) }
    }

    deinit {
        baseAddress.deallocate()
    }

    /// Total size of the elements in bytes.
    public var byteCount: Int { count * dtype.byteSize }

    /// The number of dimensions.
    public var rank: Int { shape.count }

    /// Copies `count` elements from flat index `start` into `destination` as `Float` — how kernels read weights
    /// kept in their checkpoint dtype (fp32, bf16 or fp16).
    public func copyFloats(from start: Int, count: Int, into destination: UnsafeMutablePointer<Float>) {
        precondition(start >= 0 && count >= 0 && start + count <= self.count, "elements \(start)..<\(start + count) of \(self.count)")
        switch dtype {
        case .float32:
            destination.update(from: baseAddress.assumingMemoryBound(to: Float.self) + start, count: count)
        case .bfloat16, .float16:
            Widen.copy(dtype, from: baseAddress.assumingMemoryBound(to: UInt16.self) + start, count: count, into: destination)
        case .int8, .int32, .int64:
            preconditionFailure("expected a floating-point tensor, got \(dtype)")
        }
    }

    /// Reads element `index` (flat, row-major) converted to `Double`.
    public func element(_ index: Int) -> Double {
        precondition(index >= 0 && index < count, "index \(index) out of range for \(count) elements")
        switch dtype {
        case .float32: return Double(baseAddress.load(fromByteOffset: index * 4, as: Float.self))
        case .float16:
            return Double(HalfConversion.float(fromFloat16: baseAddress.load(fromByteOffset: index * 2, as: UInt16.self)))
        case .bfloat16:
            return Double(HalfConversion.float(fromBFloat16: baseAddress.load(fromByteOffset: index * 2, as: UInt16.self)))
        case .int8: return Double(baseAddress.load(fromByteOffset: index, as: Int8.self))
        case .int32: return Double(baseAddress.load(fromByteOffset: index * 4, as: Int32.self))
        case .int64: return Double(baseAddress.load(fromByteOffset: index * 8, as: Int64.self))
        }
    }

    /// Writes `value` to element `index`, converted to the tensor's dtype (integers wrap to their width).
    public func setElement(_ index: Int, _ value: Double) {
        precondition(index >= 0 && index < count, "index \(index) out of range for \(count) elements")
        switch dtype {
        case .float32: baseAddress.storeBytes(of: Float(value), toByteOffset: index * 4, as: Float.self)
        case .float16:
            baseAddress.storeBytes(of: HalfConversion.float16Bits(from: Float(value)), toByteOffset: index * 2, as: UInt16.self)
        case .bfloat16:
            baseAddress.storeBytes(of: HalfConversion.bfloat16Bits(from: Float(value)), toByteOffset: index * 2, as: UInt16.self)
        case .int8: baseAddress.storeBytes(of: Int8(truncatingIfNeeded: Int64(value)), toByteOffset: index, as: Int8.self)
        case .int32: baseAddress.storeBytes(of: Int32(truncatingIfNeeded: Int64(value)), toByteOffset: index * 4, as: Int32.self)
        case .int64: baseAddress.storeBytes(of: Int64(value), toByteOffset: index * 8, as: Int64.self)
        }
    }

    /// All elements converted to `Double`, in row-major order.
    public func toDoubles() -> [Double] {
        (0..<count).map(element)
    }

    /// A new tensor with the same shape and dtype and a copy of the elements.
    public func copy() -> Tensor {
        let result = Tensor(zeros: shape, dtype: dtype)
        result.baseAddress.copyMemory(from: baseAddress, byteCount: byteCount)
        return result
    }

    /// Whether both tensors have the same dtype, shape and bytes.
    public func isBitwiseEqual(to other: Tensor) -> Bool {
        dtype == other.dtype && shape == other.shape
            && (byteCount == 0 || memcmp(baseAddress, other.baseAddress, byteCount) == 0)
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
