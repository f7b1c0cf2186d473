#if canImport(Accelerate)
import Accelerate
#else
import COpenBLAS
#endif
import Dispatch

/// Matrix multiplication through BLAS (OpenBLAS on Linux, Accelerate on Apple platforms).
public enum Matmul {
    /// Rows of a 16-bit weight converted to fp32 per BLAS call: bounds the scratch (rows × k floats) while
    /// keeping each call large enough for BLAS to run at speed.
    static let weightRowsPerBlock = 256

    /// Up to this many input rows (decode, batched decode, pipeline micro-batches), 16-bit weights are read once
    /// by `FusedLinear` — widened in registers, never written out: above four rows in 64-row weight blocks that
    /// stay in L2 while every group of four input rows passes. Measured (small preset, 1 thread, batched decode):
    /// 32 rows 198.5 tokens/s against 173.8 by widening for sgemm, 64 rows 208.8 against 204.4.
    static let fusedRowLimit = 64

    /// `output[m, n] = input[m, k] · weight[n, k]ᵀ` — a linear layer with its weight stored as PyTorch stores
    /// it (`[out_features, in_features]`), in its checkpoint dtype.
    ///
    /// fp32 weights go to `sgemm` directly; bf16 and fp16 weights are widened to fp32 a block of rows at a time.
    /// `input` and `output` are fp32. `threads` run the fused decode kernel (BLAS uses its own count, see
    /// `setBLASThreads`).
    public static func linear(_ input: Tensor, weight: Tensor, into output: Tensor, threads: Int = 1) {
        precondition(input.dtype == .float32 && output.dtype == .float32, "linear computes in float32")
        precondition(input.rank == 2 && weight.rank == 2 && output.rank == 2, "linear takes [m, k] · [n, k]ᵀ → [m, n]")
        let (m, k, n) = (input.shape[0], input.shape[1], weight.shape[0])
        precondition(weight.shape[1] == k && output.shape == [m, n], "shapes \(input.shape) · \(weight.shape)ᵀ → \(output.shape) do not fit")
        if m == 0 || n == 0 { return }
        let a = input.baseAddress.assumingMemoryBound(to: Float.self)
        let c = output.baseAddress.assumingMemoryBound(to: Float.self)
        switch weight.dtype {
        case .float32:
            gemm(m: m, n: n, k: k, a: a, lda: k, b: weight.baseAddress.assumingMemoryBound(to: Float.self), ldb: k, transposeB: true, c: c, ldc: n)
        // (A `where` clause binds to the last pattern only, so each pattern has its own.)
        case .bfloat16 where m <= fusedRowLimit, .float16 where m <= fusedRowLimit:
            FusedLinear.run(
                m: m, k: k, n: n, input: a, weight: weight.baseAddress.assumingMemoryBound(to: UInt16.self), dtype: weight.dtype, output: c,
                threads: max(threads, 1))
        case .bfloat16, .float16:
            let rows = min(weightRowsPerBlock, n)
            let scratch = UnsafeMutablePointer<Float>.allocate(capacity: rows * k)
            defer { scratch.deallocate() }
            var first = 0
            while first < n {
                let count = min(rows, n - first)
                weight.copyFloats(from: first * k, count: count * k, into: scratch)
                gemm(m: m, n: count, k: k, a: a, lda: k, b: scratch, ldb: k, transposeB: true, c: c + first, ldc: n)
                first += count
            }
        case .int8, .int32, .int64:
            preconditionFailure("linear weights are floating point, got \(weight.dtype)")
        }
    }

    /// `c[m, n] = alpha · a[m, k] · op(b) + beta · c` on row-major fp32 buffers with leading dimensions (floats
    /// per row) `lda`, `ldb`, `ldc`; `op(b)` is `b[n, k]ᵀ` when `transposeB`, else `b[k, n]`. For kernels that
    /// multiply tiles of their own buffers (attention), and for `linear`.
    public static func gemm(
        m: Int, n: Int, k: Int, alpha: Float = 1, a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
        transposeB: Bool, beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        guard m > 0 && n > 0 && k > 0 else { return }
        cblas_sgemm(
            CblasRowMajor, CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans, blasInt(m), blasInt(n), blasInt(k), alpha, a, blasInt(lda), b,
            blasInt(ldb), beta, c, blasInt(ldc))
    }


    /// Chooses between the C kernels (the decode linear and SiLU·up, where the CPU has AVX2) and the portable
    /// Swift ones; returns the previous choice. For tests and comparisons: the default is the fastest available.
    @discardableResult
    public static func useVectorExtensions(_ enabled: Bool) -> Bool {
        FusedLinear.useAVX2.exchange(enabled && FusedLinear.hasAVX2, ordering: .relaxed)
    }

    /// Sets how many threads BLAS uses (OpenBLAS; Accelerate chooses for itself). Process-wide, because
    /// OpenBLAS keeps one count per process; Tandem's own kernels take their thread count from their layer.
    public static func setBLASThreads(_ count: Int) {
        #if !canImport(Accelerate)
        openblas_set_num_threads(Int32(max(count, 1)))
        #endif
    }
}

#if canImport(Accelerate)
@inline(__always) private func blasInt(_ value: Int) -> Int32 { Int32(value) }
#else
@inline(__always) private func blasInt(_ value: Int) -> blasint { blasint(value) }
#endif
