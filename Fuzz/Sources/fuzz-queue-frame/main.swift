// The broadcast queue's frame prefix and chunk header: lengths over the limits are refused, what decodes
// re-encodes to the same bytes. The first byte picks which (and, for a chunk, its inline capacity).
import FuzzSupport
@testable import TandemComm

fuzzerMain { input in
    guard let selector = input.first else { return }
    let body = Array(input.dropFirst())
    if selector % 2 == 0 {
        let decoded: Int?
        do { decoded = try QueueFrame.length(decodingPrefix: body) } catch { return }
        if let length = decoded { precondition(length <= QueueFrame.maximumMessageBytes, "frame of \(length) bytes accepted") }
        precondition(QueueFrame.prefix(length: decoded) == body, "prefix does not round-trip")
    } else {
        let inline = Int(selector) * 64 + 112
        guard let header = try? QueueFrame.ChunkHeader(decoding: body, inlineBytes: inline) else { return }
        precondition(header.length <= (header.overflow ? QueueFrame.maximumMessageBytes : inline), "chunk of \(header.length) bytes accepted")
        var stored = [UInt8](repeating: 0xAA, count: QueueFrame.chunkHeaderBytes)
        stored.withUnsafeMutableBytes { header.store(to: $0.baseAddress!) }
        precondition(stored == body, "chunk header does not round-trip")
    }
}
