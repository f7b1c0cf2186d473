// A liveness stream as the monitor reads it: bytes arrive in pieces (cut where the first byte says), and the
// messages taken off must be the same however the stream was cut, re-encode to the bytes they came from, and
// never leave more than one message's worth buffered.
import FuzzSupport
@testable import TandemComm

fuzzerMain { input in
    guard let cut = input.first else { return }
    let stream = Array(input.dropFirst())
    let whole = read(stream, piece: stream.count)
    let pieces = read(stream, piece: Int(cut) % 16 + 1)
    precondition(whole.messages == pieces.messages && whole.failed == pieces.failed, "pieces change what is read")
    var encoded: [UInt8] = []
    for message in whole.messages { encoded += message.encoded() }
    precondition(encoded == Array(stream[0..<encoded.count]), "messages do not round-trip")
    precondition(whole.failed || whole.leftover <= 9 + LivenessMessage.maximumReasonBytes, "buffer grows past one message")
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
