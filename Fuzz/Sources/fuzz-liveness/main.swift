// A liveness stream as the monitor reads it: bytes arrive in pieces (cut where the first byte says), and the
// messages taken off must be the same however the stream was cut, re-encode to the bytes they came from, and
// never leave more than one message's worth buffered.
import FuzzSupport
@testable import TandemComm
#if canImport(Glibc)
import Glibc
#endif

exit(fuzzerMain(fuzz))

func fuzz(_ data: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    guard let data else { return 0 }
    guard count >= 1 else { return 0 }
    let stream = Array(UnsafeBufferPointer(start: data + 1, count: count - 1))
    let whole = read(stream, piece: stream.count)
    let cut = read(stream, piece: Int(data[0]) % 16 + 1)
    precondition(whole.messages == cut.messages && whole.failed == cut.failed, "pieces change what is read")
    var encoded: [UInt8] = []
    for message in whole.messages { encoded += message.encoded() }
    precondition(encoded == Array(stream[0..<encoded.count]), "messages do not round-trip")
    precondition(whole.failed || whole.leftover <= 9 + LivenessMessage.maximumReasonBytes, "buffer grows past one message")
    return 0
}

private func read(_ stream: [UInt8], piece: Int) -> (messages: [LivenessMessage], failed: Bool, leftover: Int) {
    var buffer: [UInt8] = []
    var messages: [LivenessMessage] = []
    var start = 0
    while start < stream.count {
        buffer += stream[start..<min(start + piece, stream.count)]
        start += piece
        do {
            while let message = try LivenessMessage.next(from: &buffer) { messages.append(message) }
        } catch {
            return (messages, true, buffer.count)
        }
    }
    return (messages, false, buffer.count)
}
