// The data plane's 40-byte header: any 40 bytes decode to a header or to nil (wrong magic), its summary is
// printable, and a decoded header re-encodes to the same bytes except the reserved word, which is written zero.
import FuzzSupport
@testable import TandemComm
#if canImport(Glibc)
import Glibc
#endif

exit(fuzzerMain(fuzz))

func fuzz(_ data: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    guard let data else { return 0 }
    guard count >= WireHeader.byteCount else { return 0 }
    guard let header = WireHeader.decode(from: UnsafeRawPointer(data)) else {
        precondition(data[0] != 0x54 || data[1] != 0x4D, "a header with the magic did not decode")
        return 0
    }
    _ = header.summary
    var encoded = [UInt8](repeating: 0xAA, count: WireHeader.byteCount)
    encoded.withUnsafeMutableBytes { header.encode(into: $0.baseAddress!) }
    precondition(Array(UnsafeBufferPointer(start: data, count: 36)) == Array(encoded[0..<36]), "header does not round-trip")
    precondition(encoded[36..<40].allSatisfy { $0 == 0 }, "reserved bytes not zero")
    precondition(WireHeader.decode(from: encoded) == header, "re-encoded header decodes differently")
    return 0
}
