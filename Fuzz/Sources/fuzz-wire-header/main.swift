// The data plane's 40-byte header: any 40 bytes decode to a header or to nil (wrong magic), its summary is
// printable, and a decoded header re-encodes to the same bytes except the reserved word, which is written zero.
import FuzzSupport
@testable import TandemComm

fuzzerMain { input in
    guard input.count >= WireHeader.byteCount else { return }
    guard let header = WireHeader.decode(from: UnsafeRawPointer(input.baseAddress!)) else {
        precondition(input[0] != 0x54 || input[1] != 0x4D, "a header with the magic did not decode")
        return
    }
    _ = header.summary
    var encoded = [UInt8](repeating: 0xAA, count: WireHeader.byteCount)
    encoded.withUnsafeMutableBytes { header.encode(into: $0.baseAddress!) }
    precondition(Array(input[0..<36]) == Array(encoded[0..<36]), "header does not round-trip")
    precondition(encoded[36..<40].allSatisfy { $0 == 0 }, "reserved bytes not zero")
    precondition(WireHeader.decode(from: encoded) == header, "re-encoded header decodes differently")
}
