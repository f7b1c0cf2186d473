// The store's request and answer bodies. Decoding is strict, so every body that decodes is the canonical
// encoding of what it decoded to: re-encoding must give the same bytes back. The first input byte picks the
// side (even: a request as the server reads it, odd: an answer as a client reads it).
import FuzzSupport
@testable import TandemComm
#if canImport(Glibc)
import Glibc
#endif

exit(fuzzerMain(fuzz))

func fuzz(_ data: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    guard let data else { return 0 }
    guard count >= 1 else { return 0 }
    let body = Array(UnsafeBufferPointer(start: data + 1, count: count - 1))
    if data[0] % 2 == 0 {
        guard let request = try? StoreRequest(decoding: body) else { return 0 }
        precondition(request.encoded() == body, "request \(request) does not round-trip")
    } else {
        guard let answer = try? StoreAnswer(decoding: body) else { return 0 }
        precondition(answer.encoded() == body, "answer \(answer) does not round-trip")
    }
    return 0
}
