import CTandemKernels

/// How a linear layer's weight is quantized: llama.cpp's block formats, so files and results are interchangeable
/// with ggml's — every row cut into blocks of 32 values, each block an fp16 scale and the values as 8-bit
/// (`q8_0`: 34 bytes a block, 8.5 bits a weight) or 4-bit integers (`q4_0`: 18 bytes, 4.5 bits a weight).
public enum WeightQuantization: String, Sendable, Codable, CaseIterable {
    case q8_0
    case q4_0

    /// Values per block.
    public static let blockSize = 32

    /// Bytes of one block.
    public var blockBytes: Int { Int(tandem_quant_block_bytes(format)) }

    /// Bytes of a row of `columns` values (`columns` a multiple of `blockSize`).
    public func rowBytes(columns: Int) -> Int { columns / Self.blockSize * blockBytes }

    /// The C kernels' code for this format.
    var format: Int32 {
        switch self {
        case .q8_0: TANDEM_Q8_0
        case .q4_0: TANDEM_Q4_0
        }
    }

    /// `rows` rows of `values` (`[rows, columns]` fp32, `columns` a multiple of 32) as blocks, row after row —
    /// the bytes ggml's reference quantizer writes.
    public func quantize(_ values: UnsafePointer<Float>, rows: Int, columns: Int) -> [UInt8] {
        precondition(columns % Self.blockSize == 0, "\(rawValue) quantizes rows of whole 32-value blocks, got \(columns) columns")
        var bytes = [UInt8](repeating: 0, count: rows * rowBytes(columns: columns))
        bytes.withUnsafeMutableBytes { buffer in
            for row in 0..<rows {
                tandem_quantize_row(format, values + row * columns, columns, buffer.baseAddress! + row * rowBytes(columns: columns))
            }
        }
        return bytes
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
