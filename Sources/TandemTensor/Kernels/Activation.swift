import CTandemKernels

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The element-wise and row-wise functions of a decoder layer, on fp32 buffers.
public enum Activation {
    /// `output[i] = silu(gate[i]) · up[i]` with `silu(g) = g / (1 + e^(−g))` — Llama's gated MLP. Each row of
    /// `gateUp` (`[rows, 2·n]`, gate first, as a merged gate/up projection produces) gives a row of `output`
    /// (`[rows, n]`).
    public static func siluAndMultiply(_ gateUp: Tensor, into output: Tensor) {
        precondition(gateUp.dtype == .float32 && output.dtype == .float32, "siluAndMultiply runs on float32")
        let n = output.shape.last ?? 0
        precondition(gateUp.shape.last == 2 * n && gateUp.count == 2 * output.count, "gate/up \(gateUp.shape) does not give \(output.shape)")
        let source = gateUp.baseAddress.assumingMemoryBound(to: Float.self)
        let target = output.baseAddress.assumingMemoryBound(to: Float.self)
        let rows = n == 0 ? 0 : output.count / n
        // Eight lanes with a polynomial e^x in C where the CPU has AVX2 (libm's expf per element cost ~5 % of
        // a batched step); the portable loop elsewhere.
        if FusedLinear.useAVX2.load(ordering: .relaxed) { return tandem_silu_mul_avx2(source, rows, n, target) }
        for row in 0..<rows {
            let gate = source + row * 2 * n
            let up = gate + n
            let out = target + row * n
            for index in 0..<n { out[index] = gate[index] / (1 + expf(-gate[index])) * up[index] }
        }
    }

    /// log Σ exp(row) in float64, the maximum taken out first so no exponent overflows: `row[i]` minus it is
    /// log-softmax at i.
    public static func logSumExp(_ row: UnsafeBufferPointer<Float>) -> Double {
        var largest = -Float.infinity
        for value in row where value > largest { largest = value }
        var sum = 0.0
        for value in row { sum += exp(Double(value - largest)) }
        return Double(largest) + log(sum)
    }

    /// Softmax of `count` values in place, subtracting the maximum first so no exponent overflows.
    public static func softmax(_ values: UnsafeMutablePointer<Float>, count: Int) {
        guard count > 0 else { return }
        var largest = -Float.infinity
        for index in 0..<count { largest = max(largest, values[index]) }
        var sum: Float = 0
        for index in 0..<count {
            values[index] = expf(values[index] - largest)
            sum += values[index]
        }
        let inverse = 1 / sum
        for index in 0..<count { values[index] *= inverse }
    }
}
