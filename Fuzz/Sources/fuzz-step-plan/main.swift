// The engine's per-step plan as a worker reads it off the broadcast queue: a plan that decodes is
// self-consistent (its tokens match its sequences) and re-encodes to the same bytes.
import FuzzSupport
import TandemEngine
#if canImport(Glibc)
import Glibc
#endif

exit(fuzzerMain(fuzz))

func fuzz(_ data: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    guard let data else { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: data, count: count))
    guard let plan = try? StepPlan(decoding: bytes) else { return 0 }
    if case let .step(batch) = plan {
        precondition(batch.tokens.count == batch.sequences.reduce(0) { $0 + $1.tokenCount }, "tokens do not match sequences")
    }
    precondition(plan.encoded() == bytes, "plan does not round-trip")
    return 0
}
