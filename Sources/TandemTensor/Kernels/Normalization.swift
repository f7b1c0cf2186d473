#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Root-mean-square layer normalisation (Llama's `RMSNorm`): `y = x / sqrt(mean(x²) + ε) · w`, per row.
public enum RMSNorm {
    /// Normalises each row of `input` (`[rows, d]`, fp32) into `output` (same shape, may be `input`), scaled
    /// by `weight` (`[d]`, any float dtype; an fp32 weight is read in place, others are widened per call). The
    /// mean of squares accumulates in fp32, as transformers does after casting to float.
    public static func apply(_ input: Tensor, weight: Tensor, epsilon: Float, into output: Tensor) {
        precondition(input.dtype == .float32 && output.dtype == .float32 && input.shape == output.shape, "RMSNorm runs on float32 rows")
        let d = weight.count
        precondition(input.rank >= 1 && input.shape.last == d, "RMSNorm weight \(weight.shape) does not fit rows of \(input.shape)")
        let rows = d == 0 ? 0 : input.count / d
        let x = input.baseAddress.assumingMemoryBound(to: Float.self)
        let y = output.baseAddress.assumingMemoryBound(to: Float.self)
        if weight.dtype == .float32 {
            normalize(x, into: y, rows: rows, d: d, scale: weight.baseAddress.assumingMemoryBound(to: Float.self), epsilon: epsilon)
        } else {
            withUnsafeTemporaryAllocation(of: Float.self, capacity: max(d, 1)) { scale in
                weight.copyFloats(from: 0, count: d, into: scale.baseAddress!)
                normalize(x, into: y, rows: rows, d: d, scale: scale.baseAddress!, epsilon: epsilon)
            }
        }
    }

    private static func normalize(
        _ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, rows: Int, d: Int, scale: UnsafePointer<Float>, epsilon: Float
    ) {
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
