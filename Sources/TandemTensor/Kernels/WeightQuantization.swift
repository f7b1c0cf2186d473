import CTandemKernels
import Dispatch

/// How a linear layer's weight is quantized: llama.cpp's block formats, so files and results are interchangeable
/// with ggml's — every row cut into blocks, each block its scales and small integers: `q8_0` (32 values, an fp16
/// scale and 8-bit integers: 34 bytes, 8.5 bits a weight), `q4_0` (32 values, 4-bit: 18 bytes, 4.5 bits), and
/// the k-quants, super-blocks of 256 values in sub-blocks with their own 6- or 8-bit scales: `q4_K` (4-bit values
/// with minimums, 144 bytes, 4.5 bits) and `q6_K` (6-bit, 210 bytes, 6.56 bits). Float weights quantize to any of
/// them as ggml's reference quantizers write them; GGUF files bring them ready-made.
public enum WeightQuantization: String, Sendable, Codable, CaseIterable {
    case q8_0
    case q4_0
    case q4_K = "q4_k"
    case q6_K = "q6_k"

    /// Values per block (32; 256 for the k-quants).
    public var blockElements: Int { Int(tandem_quant_block_elements(format)) }

    /// Bytes of one block.
    public var blockBytes: Int { Int(tandem_quant_block_bytes(format)) }

    /// The format rows of `columns` values are stored in when this one is asked for: this format where they are
    /// whole blocks; q8_0 where only 32-value blocks fit — a k-quant's 256-value super-blocks cut by a
    /// tensor-parallel split or a narrow model, stored at 8.5 bits a weight rather than refused, as llama.cpp's
    /// quantizer falls back for rows its k-quants do not fit; nil where no block fits.
    public func fitting(columns: Int) -> WeightQuantization? {
        if columns % blockElements == 0 { return self }
        return columns % Self.q8_0.blockElements == 0 ? .q8_0 : nil
    }

    /// Bytes of a row of `columns` values (`columns` a multiple of `blockElements`).
    public func rowBytes(columns: Int) -> Int { columns / blockElements * blockBytes }

    /// The C kernels' code for this format.
    var format: Int32 {
        switch self {
        case .q8_0: TANDEM_Q8_0
        case .q4_0: TANDEM_Q4_0
        case .q4_K: TANDEM_Q4_K
        case .q6_K: TANDEM_Q6_K
        }
    }

    /// The C kernels' code for what a layer's inputs are quantized to before multiplying this format (Q8_0; Q8_K
    /// for the k-quants), as llama.cpp's vec_dot_type.
    var inputFormat: Int32 { tandem_quant_input_format(format) }

    /// Bytes of an input row of `columns` values quantized to `inputFormat`.
    func inputRowBytes(columns: Int) -> Int { columns / blockElements * Int(tandem_quant_block_bytes(inputFormat)) }

    /// `rows` rows of `values` (`[rows, columns]` fp32, `columns` a multiple of `blockElements`) as blocks, row after row —
    /// the bytes ggml's reference quantizer writes — quantized on `threads` threads.
    public func quantize(_ values: UnsafePointer<Float>, rows: Int, columns: Int, threads: Int = 1) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: rows * rowBytes(columns: columns))
        let source = UncheckedSendable(values)
        bytes.withUnsafeMutableBytes { buffer in
            quantize(rows: rows, columns: columns, threads: threads, into: buffer.baseAddress!) { row, target in
                target.update(from: source.value + row * columns, count: columns)
            }
        }
        return bytes
    }

    /// `rows` rows of `columns` values as blocks into `blocks` (`rows · rowBytes(columns:)` bytes), on `threads`
    /// threads, each row's fp32 values first written by `row(index, buffer)` — so a caller widens one row at a
    /// time and the memory peak stays the blocks plus a row per thread.
    public func quantize(
        rows: Int, columns: Int, threads: Int, into blocks: UnsafeMutableRawPointer, row: @Sendable (Int, UnsafeMutablePointer<Float>) -> Void
    ) {
        precondition(columns % blockElements == 0, "\(rawValue) quantizes rows of whole \(blockElements)-value blocks, got \(columns) columns")
        let (parts, rowBytes, target) = (min(max(threads, 1), max(rows, 1)), rowBytes(columns: columns), UncheckedSendable(blocks))
        DispatchQueue.concurrentPerform(iterations: parts) { part in
            withUnsafeTemporaryAllocation(of: Float.self, capacity: max(columns, 1)) { buffer in
                for index in (rows * part / parts)..<(rows * (part + 1) / parts) {
                    row(index, buffer.baseAddress!)
                    tandem_quantize_row(format, buffer.baseAddress!, columns, target.value + index * rowBytes)
                }
            }
        }
    }

    /// The values of `rows` rows of blocks.
    public func dequantize(_ bytes: [UInt8], rows: Int, columns: Int) -> [Float] {
        precondition(bytes.count == rows * rowBytes(columns: columns), "\(bytes.count) bytes for \(rows) rows of \(columns) \(rawValue) values")
        var values = [Float](repeating: 0, count: rows * columns)
        guard !values.isEmpty else { return values }
        bytes.withUnsafeBytes { source in
            values.withUnsafeMutableBufferPointer { dequantize(source.baseAddress!, rows: rows, columns: columns, into: $0.baseAddress!) }
        }
        return values
    }

    /// The values of `rows` rows of blocks at `source` (`rows · rowBytes(columns:)` bytes) written to `target`.
    public func dequantize(_ source: UnsafeRawPointer, rows: Int, columns: Int, into target: UnsafeMutablePointer<Float>) {
        tandem_dequantize_rows(format, source, rows, columns, target)
    }
}
