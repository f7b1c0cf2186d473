#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Root-mean-square layer normalisation (Llama's `RMSNorm`): `y = x / sqrt(mean(x²) + ε) · w`, per row.
public enum RMSNorm {
    /// Normalises each row of `input` (`[rows, d]`, fp32) into `output` (same shape, may be `input`), scaled
    /// by `weight` (`[d]`, any float dtype). The mean of squares accumulates in fp32, as transformers does
    /// after casting to float.
    public static func apply(_ input: Tensor, weight: Tensor, epsilon: Float, into output: Tensor) {
        precondition(input.dtype == .float32 && output.dtype == .float32 && input.shape == output.shape, "RMSNorm runs on float32 rows")
        let d = weight.count
        precondition(input.rank >= 1 && input.shape.last == d, "RMSNorm weight \(weight.shape) does not fit rows of \(input.shape)")
        let scale = Widened(weight)
        let rows = d == 0 ? 0 : input.count / d
        let x = input.baseAddress.assumingMemoryBound(to: Float.self)
        let y = output.baseAddress.assumingMemoryBound(to: Float.self)
        for row in 0..<rows {
            let source = x + row * d
            var squares: Float = 0
            for index in 0..<d { squares += source[index] * source[index] }
            let factor = 1 / sqrtf(squares / Float(d) + epsilon)
            let target = y + row * d
            for index in 0..<d { target[index] = source[index] * factor * scale[index] }
        }
    }
}

/// A float tensor's elements as fp32, widened once (weights of any float dtype used by fp32 kernels).
struct Widened {
    private let values: [Float]

    init(_ tensor: Tensor) {
        values = [Float](unsafeUninitializedCapacity: tensor.count) { buffer, initialized in
            if let base = buffer.baseAddress { tensor.copyFloats(from: 0, count: tensor.count, into: base) }
            initialized = tensor.count
        }
    }

    subscript(index: Int) -> Float { values[index] }
}
