import KerfCore
import KerfGraph

/// A graph compiled for running, immutable once made: the steps in order with their
/// operators, every value mapped to a slot, the constants in their slots, what each step
/// releases, and how feeds are checked. Runs keep their values in a `RunState` of their own,
/// so one plan serves any number of runs at once.
final class ExecutionPlan: @unchecked Sendable {
    /// A declared graph input a feed may set: its slot, declaration, and whether it is a
    /// runtime input (not initializer-backed).
    struct FeedTarget {
        let slot: Int
        let info: ValueInfo
        let isRuntimeInput: Bool
    }

    /// One step as built: kept so that an extended plan reuses the operator.
    struct Step {
        let node: Node
        let op: any Operator
        let lock: OperatorLock
        /// Input slots before constants that operators took were cut (-1: omitted).
        let inputs: [Int]
        let outputs: [Int]
        /// Positions of `inputs` whose constant the operator took.
        let taken: Set<Int>
    }

    let inputs: [ValueInfo]
    let outputs: [ValueInfo]
    let steps: [Step]
    let schedule: Schedule
    /// The steps a run may skip when the shapes they compute from are as in its state's last run.
    let memo: ShapeMemo
    let slotOfName: [String: Int]
    let slotCount: Int
    let maxInputCount: Int
    /// One entry per slot: the constants in place, nil elsewhere.
    let initialValues: [Tensor?]
    /// Slots a run may set that hold no constant: cleared after every run.
    let runSlots: [Int]
    /// The slots of the graph outputs, in order.
    let outputSlots: [Int]
    /// Per slot: true when a step releases it after its last read (a run that returns such a
    /// value keeps it instead: `RunState.kept`).
    let released: [Bool]
    let feedTargets: [String: FeedTarget]
    /// The graph's initializer names (for the message when one is fed but cannot be).
    let initializerNames: Set<String>
    /// Slots of the constants operators took (`OperatorContext.takeConstant`): not kept here.
    let taken: Set<Int>
    /// Constants that no feed can replace and that were not taken, by slot (for extensions).
    let constants: [Int: Tensor]
    /// Constants that no feed can replace (taken or not), by slot.
    let takeable: Set<Int>
    /// Names of the source graph's values that graph optimizations removed (for messages).
    let removedNames: Set<String>

    init(inputs: [ValueInfo], outputs: [ValueInfo], steps: [Step], slotOfName: [String: Int], constants: [Int: Tensor],
         takeable: Set<Int>, alreadyTaken: Set<Int> = [], feedTargets: [String: FeedTarget], initializerNames: Set<String>,
         removedNames: Set<String>) throws {
        self.inputs = inputs
        self.outputs = outputs
        self.slotOfName = slotOfName
        self.slotCount = slotOfName.count
        self.feedTargets = feedTargets
        self.initializerNames = initializerNames
        self.removedNames = removedNames
        self.takeable = takeable
        // Every graph output must be produced by something.
        for o in outputs where slotOfName[o.name] == nil {
            throw KerfError.invalidModel("graph output '\(o.name)' is not produced by any node")
        }
        let outputSlots = outputs.map { slotOfName[$0.name]! }
        let graphOutputs = Set(outputSlots)
        // Constants that every reader took are not kept: those readers get nil for them.
        var constants = constants, read = Set<Int>(), untaken = Set<Int>(), taken = alreadyTaken
        for step in steps {
            for (k, s) in step.inputs.enumerated() where s >= 0 {
                read.insert(s)
                if !step.taken.contains(k) { untaken.insert(s) }
            }
        }
        for s in Array(constants.keys) where read.contains(s) && !untaken.contains(s) && !graphOutputs.contains(s) {
            constants[s] = nil
            taken.insert(s)
        }
        let stepInputs = steps.map { $0.inputs.map { taken.contains($0) ? -1 : $0 } }
        // Lifetimes: a slot is released after its last reader, unless it is a graph output or a constant.
        var lastReader: [Int: Int] = [:]
        for (i, ins) in stepInputs.enumerated() { for s in ins where s >= 0 { lastReader[s] = i } }
        let keep = graphOutputs.union(constants.keys)
        var releases = [[Int]](repeating: [], count: steps.count)
        var released = [Bool](repeating: false, count: slotOfName.count)
        for (s, i) in lastReader where !keep.contains(s) {
            releases[i].append(s)
            released[s] = true
        }
        self.released = released
        var initialValues = [Tensor?](repeating: nil, count: slotOfName.count)
        for (s, t) in constants { initialValues[s] = t }
        self.steps = steps
        self.constants = constants
        self.taken = taken
        self.initialValues = initialValues
        self.runSlots = initialValues.indices.filter { initialValues[$0] == nil }
        self.outputSlots = outputSlots
        self.schedule = Schedule(ops: steps.map(\.op), locks: steps.map(\.lock), inputs: stepInputs, outputs: steps.map(\.outputs), releases: releases)
        self.maxInputCount = stepInputs.map(\.count).max() ?? 0
        self.memo = ShapeMemo(nodes: steps.map(\.node), inputs: steps.map(\.inputs), outputs: steps.map(\.outputs),
                              constants: takeable, graphOutputs: graphOutputs)
    }

    /// The slot of a value a run is asked to return, or an error saying why there is none.
    func outputSlot(_ name: String) throws -> Int {
        guard let s = slotOfName[name] else {
            if removedNames.contains(name) {
                throw KerfError.invalidArgument("'\(name)' was fused away by graph optimizations: list it in the session's kept values "
                                                + "(keptValues; kept_values in C and Python) or turn optimizations off to read it")
            }
            throw KerfError.invalidArgument("the model has no value named '\(name)'")
        }
        guard !taken.contains(s) else {
            throw KerfError.invalidArgument("'\(name)' is a constant the session keeps only in a prepared form: read it from the model")
        }
        return s
    }
}
