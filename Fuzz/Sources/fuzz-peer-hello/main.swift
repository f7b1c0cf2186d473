// A peer's hello as an acceptor reads it: the 4-byte length (refused over the limit), then the body, decoded
// strictly; a hello that decodes re-frames to exactly the bytes read.
import FuzzSupport
@testable import TandemComm

fuzzerMain { input in
    guard input.count >= 4, let length = try? PeerHello.bodyLength(Array(input[0..<4])) else { return }
    precondition(length <= PeerHello.maximumBytes, "length \(length) accepted over the limit")
    guard input.count - 4 >= length, let hello = try? PeerHello(decoding: Array(input[4..<(4 + length)])) else { return }
    precondition(hello.frame() == Array(input[0..<(4 + length)]), "hello does not round-trip")
}
