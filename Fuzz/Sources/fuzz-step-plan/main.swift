// The engine's per-step plan as a worker reads it off the broadcast queue: a plan that decodes is
// self-consistent (its tokens match its sequences) and re-encodes to the same bytes.
import FuzzSupport
import TandemEngine

fuzzerMain { input in
    let bytes = Array(input)
    guard let plan = try? StepPlan(decoding: bytes) else { return }
    if case let .step(batch) = plan {
        precondition(batch.tokens.count == batch.sequences.reduce(0) { $0 + $1.tokenCount }, "tokens do not match sequences")
    }
    precondition(plan.encoded() == bytes, "plan does not round-trip")
}
