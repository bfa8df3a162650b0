import KerfCore
import KerfGraph

/// A subgraph (an If branch, a Loop or Scan body) compiled once, at session creation, into a
/// plan of its own, which its node's operator runs as often as it needs. The values of
/// enclosing graphs the subgraph reads by name (`Graph.outerNames`) become extra inputs of
/// that plan, fed from the node's implicit inputs (`OperatorContext.implicitInputs`) at each
/// run. Only tensors flow through it: a subgraph whose inputs or outputs are declared as
/// sequences, maps or optionals is refused (`.unsupported`). Feeds are checked against the
/// declared input dtypes, not shapes.
///
/// `run` may be called from several threads at once (each call takes a run state of its own),
/// though the operator that owns it is called by one run at a time.
final class SubgraphPlan: @unchecked Sendable {
    /// The subgraph's declared inputs (what `run` takes as `inputs`, in order) and outputs.
    let inputs: [ValueInfo]
    let outputs: [ValueInfo]
    private let plan: ExecutionPlan
    private let states = RunStatePool(capacity: 2)
    /// The names the plan's feeds go to: `inputs`, then the outer values it reads.
    private let feedNames: [String]
    /// For each outer value the subgraph reads, its position in the node's implicit inputs.
    private let outerPositions: [Int]

    /// Compiles `graph`, attribute `attribute` of `context.node`, with the session's opsets and
    /// options (graph optimizations included; no kept values).
    init(_ graph: Graph, attribute: String, context: OperatorContext) throws {
        let what = "subgraph '\(attribute)'"
        for info in graph.inputs + graph.outputs {
            if case .other(let kind)? = info.type {
                throw KerfError.unsupported("\(what) has \(kind) value '\(info.name)': Kerf runs control flow over tensors only")
            }
        }
        let outer = graph.outerNames
        var positions: [Int] = []
        for name in outer {
            guard let p = context.implicitInputs.firstIndex(of: name) else {
                throw KerfError.internal("\(what) reads '\(name)', which is not among the node's implicit inputs")
            }
            positions.append(p)
        }
        inputs = graph.inputs
        outputs = graph.outputs
        feedNames = graph.inputs.map(\.name) + outer
        outerPositions = positions
        // Feeds are checked against the declared dtypes only: exporters declare the shapes a
        // loop-carried value had when traced, and ONNX lets it change from one iteration to
        // the next.
        let runnable = graph.copy()
        runnable.inputs = graph.inputs.map { ValueInfo(name: $0.name, type: $0.dtype.map { .tensor(dtype: $0, shape: nil) }) }
            + outer.map { ValueInfo(name: $0, type: nil) }
        var options = context.options
        options.keptValues = []
        do {
            plan = try ExecutionPlan.compile(runnable, opsets: context.opsets, irVersion: 8, options: options)
        } catch let e as KerfError {
            throw e.prefixed(what)
        }
    }

    /// Runs the subgraph on `inputs` (one per declared input, checked against its declared type)
    /// and the node's implicit inputs `implicit` (as the node's operator received them), and
    /// returns one tensor per subgraph output.
    func run(_ inputs: [Tensor], implicit: ArraySlice<Tensor?>) throws -> [Tensor] {
        guard inputs.count == self.inputs.count else {
            throw KerfError.internal("a subgraph of \(self.inputs.count) inputs was given \(inputs.count)")
        }
        var feeds: [(name: String, tensor: Tensor)] = []
        feeds.reserveCapacity(feedNames.count)
        for (name, t) in zip(feedNames, inputs) { feeds.append((name, t)) }
        for (k, p) in outerPositions.enumerated() {
            let index = implicit.startIndex + p
            guard index < implicit.endIndex, let t = implicit[index] else {
                throw KerfError.invalidArgument("the outer value '\(feedNames[self.inputs.count + k])' a subgraph reads has no value")
            }
            feeds.append((feedNames[self.inputs.count + k], t))
        }
        let state = states.take(plan)
        defer {
            state.reset(plan)
            states.give(state)
        }
        try plan.bind(feeds, into: state)
        return try plan.execute(state, plan.outputSlots, profiler: nil)
    }
}
