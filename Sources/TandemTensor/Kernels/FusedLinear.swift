import Dispatch

/// `output[m, n] = input[m, k] · weight[n, k]ᵀ` for a few input rows and a 16-bit weight, reading each weight
/// row once and widening it eight values at a time in registers. Decode multiplies one row per sequence by
/// every weight of the model, so this pass runs at the speed memory delivers the weights.
enum FusedLinear {
    static func run(
        m: Int, k: Int, n: Int, input: UnsafePointer<Float>, weight: UnsafePointer<UInt16>, dtype: DType, output: UnsafeMutablePointer<Float>,
        threads: Int
    ) {
        let parts = min(threads, max(n / 64, 1))
        guard parts > 1 else {
            rows(0..<n, m: m, k: k, n: n, input: input, weight: weight, dtype: dtype, output: output)
            return
        }
        // Sendable wrappers of the pointers for the worker closures.
        let (inputAddress, weightAddress, outputAddress) = (Int(bitPattern: input), Int(bitPattern: weight), Int(bitPattern: output))
        DispatchQueue.concurrentPerform(iterations: parts) { part in
            let range = (n * part / parts)..<(n * (part + 1) / parts)
            rows(
                range, m: m, k: k, n: n, input: UnsafePointer(bitPattern: inputAddress)!, weight: UnsafePointer(bitPattern: weightAddress)!,
                dtype: dtype, output: UnsafeMutablePointer(bitPattern: outputAddress)!)
        }
    }

    private static func rows(
        _ range: Range<Int>, m: Int, k: Int, n: Int, input: UnsafePointer<Float>, weight: UnsafePointer<UInt16>, dtype: DType,
        output: UnsafeMutablePointer<Float>
    ) {
        if dtype == .bfloat16 {
            for row in range {
                for inputRow in 0..<m { output[inputRow * n + row] = dot(input + inputRow * k, weight + row * k, k, Widen.bfloat16x8) }
            }
        } else {
            for row in range {
                for inputRow in 0..<m { output[inputRow * n + row] = dot(input + inputRow * k, weight + row * k, k, Widen.float16x8) }
            }
        }
    }

    /// Σ x[i]·w[i] with two independent accumulators (so additions overlap), then a scalar tail.
    @inline(__always)
    private static func dot(
        _ x: UnsafePointer<Float>, _ w: UnsafePointer<UInt16>, _ k: Int, _ widen: (UnsafePointer<UInt16>) -> SIMD8<Float>
    ) -> Float {
        var first = SIMD8<Float>()
        var second = SIMD8<Float>()
        let raw = UnsafeRawPointer(x)
        var index = 0
        while index + 16 <= k {
            first += widen(w + index) * raw.loadUnaligned(fromByteOffset: index * 4, as: SIMD8<Float>.self)
            second += widen(w + index + 8) * raw.loadUnaligned(fromByteOffset: (index + 8) * 4, as: SIMD8<Float>.self)
            index += 16
        }
        if index + 8 <= k {
            first += widen(w + index) * raw.loadUnaligned(fromByteOffset: index * 4, as: SIMD8<Float>.self)
            index += 8
        }
        var sum = (first + second).sum()
        if index < k {
            var tail = SIMD8<Float>()
            var weights = SIMD8<UInt16>()
            for offset in 0..<(k - index) {
                tail[offset] = x[index + offset]
                weights[offset] = w[index + offset]
            }
            sum += withUnsafeBytes(of: &weights) { (widen($0.baseAddress!.assumingMemoryBound(to: UInt16.self)) * tail).sum() }
        }
        return sum
    }
}
