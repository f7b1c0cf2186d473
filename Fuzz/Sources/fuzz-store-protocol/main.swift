// The store's request and answer bodies. Decoding is strict, so every body that decodes is the canonical
// encoding of what it decoded to: re-encoding must give the same bytes back. The first input byte picks the
// side (even: a request as the server reads it, odd: an answer as a client reads it).
import FuzzSupport
@testable import TandemComm

fuzzerMain { input in
    guard let side = input.first else { return }
    let body = Array(input.dropFirst())
    if side % 2 == 0 {
        guard let request = try? StoreRequest(decoding: body) else { return }
        precondition(request.encoded() == body, "request \(request) does not round-trip")
    } else {
        guard let answer = try? StoreAnswer(decoding: body) else { return }
        precondition(answer.encoded() == body, "answer \(answer) does not round-trip")
    }
}
