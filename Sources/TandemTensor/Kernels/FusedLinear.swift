import CTandemKernels
import Dispatch
import Synchronization

/// `output[m, n] = input[m, k] · weight[n, k]ᵀ` for a few input rows and a 16-bit weight, reading each weight
/// row once and widening it in registers. Decode multiplies one row per sequence by every weight of the
/// model, so this pass runs at the speed memory delivers the weights.
///
/// On x86-64 CPUs with AVX2, FMA and F16C the rows run in C (`tandem_linear16_avx2`): the package builds for
/// baseline x86-64, where Swift's SIMD types become SSE2 and the loop is bound by instructions, not memory.
/// Elsewhere (Apple silicon: NEON) they run in Swift: sixteen weights load as eight 32-bit lanes whose low
/// halves are the even elements and high halves the odd ones (see `Widen`); the input is reordered once per
/// call to match — each group of sixteen as its eight even elements, then its eight odd ones — so the
/// products line up without shuffles.
enum FusedLinear {
    /// Whether this CPU runs the C kernel.
    static let hasAVX2 = tandem_has_avx2() != 0
    /// Whether to use it (tests turn it off to check the portable path on an AVX2 machine).
    static let useAVX2 = Atomic<Bool>(hasAVX2)

    static func run(
        m: Int, k: Int, n: Int, input: UnsafePointer<Float>, weight: UnsafePointer<UInt16>, dtype: DType, output: UnsafeMutablePointer<Float>,
        threads: Int
    ) {
        if useAVX2.load(ordering: .relaxed) {
            let bfloat: Int32 = dtype == .bfloat16 ? 1 : 0
            split(n, threads: threads) { rows in
                tandem_linear16_avx2(bfloat, input, m, k, weight, n, rows.lowerBound, rows.upperBound, output)
            }
            return
        }
        withUnsafeTemporaryAllocation(of: Float.self, capacity: m * k) { buffer in
            let reordered = buffer.baseAddress!
            let vectorEnd = k & ~15
            for row in 0..<m {
                let (source, target) = (input + row * k, reordered + row * k)
                for group in stride(from: 0, to: vectorEnd, by: 16) {
                    for lane in 0..<8 {
                        target[group + lane] = source[group + 2 * lane]
                        target[group + 8 + lane] = source[group + 2 * lane + 1]
                    }
                }
                for index in vectorEnd..<k { target[index] = source[index] }
            }
            split(n, threads: threads) { range in
                rows(range, m: m, k: k, n: n, input: reordered, weight: weight, dtype: dtype, output: output)
            }
        }
    }

    /// Runs `body` over `n` weight rows, split into up to `threads` contiguous ranges run concurrently.
    private static func split(_ n: Int, threads: Int, _ body: (Range<Int>) -> Void) {
        let parts = min(threads, max(n / 64, 1))
        guard parts > 1 else { return body(0..<n) }
        withoutActuallyEscaping(body) { body in
            // The pointers the body captures are only used before concurrentPerform returns.
            let unchecked = UncheckedSendable(body)
            DispatchQueue.concurrentPerform(iterations: parts) { part in unchecked.value((n * part / parts)..<(n * (part + 1) / parts)) }
        }
    }

    private static func rows(
        _ range: Range<Int>, m: Int, k: Int, n: Int, input: UnsafePointer<Float>, weight: UnsafePointer<UInt16>, dtype: DType,
        output: UnsafeMutablePointer<Float>
    ) {
        for row in range {
            for inputRow in 0..<m {
                output[inputRow * n + row] = dot(input + inputRow * k, weight + row * k, k: k, dtype: dtype)
            }
        }
    }

    /// One weight row against one (reordered) input row.
    private static func dot(_ input: UnsafePointer<Float>, _ weight: UnsafePointer<UInt16>, k: Int, dtype: DType) -> Float {
        let (x, w) = (UnsafeRawPointer(input), UnsafeRawPointer(weight))
        var sum = SIMD8<Float>()
        let vectorEnd = k & ~15
        var index = 0
        while index < vectorEnd {
            let bits = w.loadUnaligned(fromByteOffset: index * 2, as: SIMD8<UInt32>.self)
            let (even, odd) = dtype == .bfloat16 ? (Widen.bfloat16Even(bits), Widen.bfloat16Odd(bits)) : (Widen.float16Even(bits), Widen.float16Odd(bits))
            sum += even * x.loadUnaligned(fromByteOffset: index * 4, as: SIMD8<Float>.self)
                + odd * x.loadUnaligned(fromByteOffset: (index + 8) * 4, as: SIMD8<Float>.self)
            index += 16
        }
        return sum.sum() + tail(input, weight, from: vectorEnd, to: k, dtype)
    }

    /// Σ x[i]·w[i] over the values past the last group of sixteen (kept in their order).
    @inline(__always)
    private static func tail(_ x: UnsafePointer<Float>, _ w: UnsafePointer<UInt16>, from start: Int, to end: Int, _ dtype: DType) -> Float {
        guard start < end else { return 0 }
        let widen = HalfConversion.widening(dtype)
        var sum: Float = 0
        for index in start..<end { sum += x[index] * widen(w[index]) }
        return sum
    }
}

/// A value handed to concurrent workers that use it only while the caller waits for them.
struct UncheckedSendable<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}
