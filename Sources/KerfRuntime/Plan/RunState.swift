import KerfCore
import Synchronization

/// The values of one run: one per slot of its plan. Between runs it holds exactly the plan's
/// constants (kept apart from the plan's copy, not copied per run: the constants stay
/// referenced at least twice, so no operator takes one for an in-place write).
final class RunState: @unchecked Sendable {
    var values: [Tensor?]
    /// A run's argument array, kept for its capacity (empty between runs).
    var args: [Tensor?] = []
    /// The slots the run in progress has fed so far (empty between runs).
    var bound: [Int] = []
    /// Per slot: true when the run in progress returns it though it is no graph output (its
    /// value is kept past its last reader). All false between runs.
    var kept: [Bool]
    /// The slots set in `kept` by the run in progress.
    var keptSlots: [Int] = []
    /// What `plan.memo`'s steps computed in the runs before, here.
    var recall: ShapeMemo.Recall

    init(_ plan: ExecutionPlan) {
        values = plan.initialValues
        kept = [Bool](repeating: false, count: plan.slotCount)
        args.reserveCapacity(plan.maxInputCount)
        bound.reserveCapacity(plan.feedTargets.count)
        recall = ShapeMemo.Recall(plan.memo, steps: plan.steps.count)
    }

    /// Puts the state back as it is between runs: nothing but the plan's constants (feeds may
    /// have overridden some), nothing kept.
    func reset(_ plan: ExecutionPlan) {
        for s in plan.runSlots { values[s] = nil }
        for s in bound where plan.initialValues[s] != nil { values[s] = plan.initialValues[s] }
        bound.removeAll(keepingCapacity: true)
        args.removeAll(keepingCapacity: true)
        for s in keptSlots { kept[s] = false }
        keptSlots.removeAll(keepingCapacity: true)
    }
}

/// Run states of one plan that are not in use, so that concurrent runs each take one and a
/// run reuses the buffers of the runs before it. Holds at most `capacity` idle states.
final class RunStatePool: Sendable {
    private let idle = Mutex<[RunState]>([])
    private let capacity: Int

    init(capacity: Int) { self.capacity = capacity }

    func take(_ plan: ExecutionPlan) -> RunState {
        idle.withLock { $0.popLast() } ?? RunState(plan)
    }

    /// Returns a state that `reset` put back as between runs.
    func give(_ state: RunState) {
        idle.withLock { if $0.count < capacity { $0.append(state) } }
    }
}
