import TandemTensor

/// A validated operation, ready to run now (`perform`) or on the communication thread (`enqueue`).
///
/// Each public collective builds its plan once, so the synchronous and asynchronous forms share their
/// validation and body.
struct OperationPlan {
    let operation: OperationKind
    let dtype: DType
    /// The element count all ranks must agree on.
    let count: Int
    var tag: Int32 = 0
    /// Point-to-point operations number their messages per peer (`ProcessGroup.nextPointToPointSequence`)
    /// and leave the group's collective sequence alone, since not every rank takes part.
    var isPointToPoint = false
    let body: (Collective) throws(CommError) -> Void
}

extension ProcessGroup {
    /// Runs `plan` on this thread after every earlier operation.
    func perform(_ plan: OperationPlan) throws(CommError) {
        try run(plan.operation, dtype: plan.dtype, count: plan.count, tag: plan.tag, isPointToPoint: plan.isPointToPoint, plan.body)
    }

    /// Builds a plan and queues it; a validation error comes back as an already-failed `Work`.
    func enqueue(_ makePlan: () throws(CommError) -> OperationPlan) -> Work {
        let plan: OperationPlan
        do {
            plan = try makePlan()
        } catch {
            return Work(completed: .failure(error))
        }
        return submit(plan.operation, dtype: plan.dtype, count: plan.count, tag: plan.tag, isPointToPoint: plan.isPointToPoint, plan.body)
    }
}
