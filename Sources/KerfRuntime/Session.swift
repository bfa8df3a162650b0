import KerfCore
import KerfGraph
import KerfKernels

/// A model prepared for running: an immutable `ExecutionPlan` (nodes sorted, operators built,
/// values mapped to slots) and a pool of run states. `run` may be called from several threads
/// at once: each run takes a state of its own from the pool; each operator serves one run at a
/// time (runs overlap on different steps). The model it came from is not mutated.
///
/// A session holds no reference to its model or graph, only to the constants it runs with:
/// constant weights that operators prepared a copy of to run from (packed float MatMul/Gemm
/// weights, made at their first run) are not kept at all once prepared, so freeing the model
/// frees the original weights.
public final class Session: @unchecked Sendable {
    public let options: SessionOptions
    public let inputs: [ValueInfo]
    public let outputs: [ValueInfo]

    let compiled: ExecutionPlan
    /// The slots of `outputs` (the plan's first outputs; kept values follow them).
    private let outputSlots: [Int]
    private let states: RunStatePool
    private let profiler = StepProfiler()
    /// What the session's tensors are charged to (`SessionOptions.memoryLimit`; nil: no limit).
    private let budget: MemoryBudget?
    /// The opsets the plan's operators were built for (for `extended`).
    private let opsets: [OpsetImport]

    public convenience init(model: Model, options: SessionOptions = SessionOptions()) throws {
        try self.init(graph: model.graph, opsets: model.opsetImports, irVersion: model.irVersion, options: options)
    }

    /// `irVersion` matters for initializers that are also graph inputs: from IR 4 on a feed may
    /// override them; before IR 4 every initializer had to be listed as an input, and (as in ONNX
    /// Runtime) they are constants.
    public init(graph source: Graph, opsets: [OpsetImport], irVersion: Int = 8, options: SessionOptions = SessionOptions()) throws {
        self.options = options
        self.opsets = opsets
        budget = options.makeBudget()
        let scope = MemoryLimit.enter(budget)
        defer { MemoryLimit.leave(scope) }
        inputs = source.runtimeInputs
        outputs = source.outputs
        let retained = try Session.retainedOutputs(options.keptValues, of: source)
        compiled = try ExecutionPlan.compile(source, opsets: opsets, irVersion: irVersion, options: options, retained: retained)
        outputSlots = Array(compiled.outputSlots.prefix(outputs.count))
        states = RunStatePool(capacity: max(2, ProcessInfoCores.count))
    }

    private init(extending base: Session, plan: ExecutionPlan, outputs: [ValueInfo]) {
        options = base.options
        opsets = base.opsets
        budget = base.budget
        inputs = plan.inputs
        self.outputs = outputs
        compiled = plan
        outputSlots = Array(plan.outputSlots.prefix(outputs.count))
        states = RunStatePool(capacity: max(2, ProcessInfoCores.count))
    }

    /// `SessionOptions.keptValues` as extra outputs for the optimizer (which then keeps them),
    /// after checking that the graph has them.
    private static func retainedOutputs(_ names: [String], of g: Graph) throws -> [ValueInfo] {
        guard !names.isEmpty else { return [] }
        let known = g.valueNames
        let outputs = Set(g.outputs.map(\.name))
        var seen = Set<String>()
        return try names.compactMap { name in
            guard !name.isEmpty, known.contains(name) else {
                throw KerfError.invalidArgument("keptValues names '\(name)', which the model does not have")
            }
            guard !outputs.contains(name), seen.insert(name).inserted else { return nil }
            return ValueInfo(name: name, type: nil)
        }
    }

    /// A session that runs this one's plan followed by `nodes` (in dependency order among
    /// themselves), which may read any value of the plan and the new `inputs`; it returns
    /// `outputs` (values of either part). What this session prepared (operators, packed
    /// weights, constants) is shared, not rebuilt; the new nodes run as written (no graph
    /// optimizations). Both sessions stay usable.
    public func extended(with nodes: [Node], inputs newInputs: [ValueInfo] = [], outputs: [ValueInfo]) throws -> Session {
        let scope = MemoryLimit.enter(budget)
        defer { MemoryLimit.leave(scope) }
        let base = compiled
        var builder = PlanBuilder(extending: base, opsets: opsets, options: options)
        var targets = base.feedTargets
        for info in newInputs {
            guard base.slotOfName[info.name] == nil, targets[info.name] == nil else {
                throw KerfError.invalidArgument("input '\(info.name)' names a value the session already has")
            }
            targets[info.name] = ExecutionPlan.FeedTarget(slot: builder.slot(info.name), info: info, isRuntimeInput: true)
        }
        let extra = Graph(nodes: nodes, inputs: newInputs)
        let defined = Set(base.slotOfName.keys).union(newInputs.map(\.name)).union([""])
        for n in nodes {
            for name in n.readNames where !defined.contains(name) && !nodes.contains(where: { $0.outputs.contains(name) }) {
                if base.removedNames.contains(name) { _ = try base.outputSlot(name) }
                throw KerfError.invalidModel("\(n.label) reads '\(name)', which no node, input or value of the session defines")
            }
            for name in n.outputs where !name.isEmpty && base.slotOfName[name] != nil {
                throw KerfError.invalidModel("\(n.label) writes '\(name)', which the session already defines")
            }
        }
        let (order, cyclic) = Graph.dependencyOrder(extra.nodes, definedOutside: defined)
        guard cyclic.isEmpty else { throw KerfError.invalidModel("the added nodes have a cycle") }
        try builder.addSteps(order.map { nodes[$0] })
        let plan = try ExecutionPlan(inputs: base.inputs + newInputs, outputs: outputs, steps: builder.steps,
                                     slotOfName: builder.slotOfName, constants: builder.constants, takeable: builder.takeable,
                                     alreadyTaken: builder.gone, feedTargets: targets, initializerNames: base.initializerNames,
                                     removedNames: base.removedNames)
        return Session(extending: self, plan: plan, outputs: outputs)
    }

    /// The operators a run executes, in order, as "OpType" (default domain) or "domain.OpType"
    /// (graph optimizations included: fused operators appear under their own names).
    public var plan: [String] {
        compiled.steps.map { $0.node.isDefaultDomain ? $0.node.opType : "\($0.node.domain).\($0.node.opType)" }
    }

    /// Runs the graph. `feeds` maps runtime input names to tensors; `outputNames` (default: the
    /// graph outputs) selects what to return, in that order: any value the plan computes, graph
    /// output or not (values graph optimizations fused away need `SessionOptions.keptValues`).
    public func run(_ feeds: [String: Tensor], outputNames: [String]? = nil) throws -> [Tensor] {
        try run(feeding: feeds.map { (name: $0.key, tensor: $0.value) }, outputNames: outputNames)
    }

    /// `run` with the feeds as (name, tensor) pairs, each name at most once (an error
    /// otherwise): callers that have them so (the C API) build no dictionary per run.
    public func run(feeding feeds: [(name: String, tensor: Tensor)], outputNames: [String]? = nil) throws -> [Tensor] {
        let scope = MemoryLimit.enter(budget)
        defer { MemoryLimit.leave(scope) }
        let plan = compiled
        let wantedSlots = try outputNames?.map(plan.outputSlot) ?? outputSlots
        let state = states.take(plan)
        defer {
            state.reset(plan)
            states.give(state)
        }
        for s in wantedSlots where plan.released[s] && !state.kept[s] {
            state.kept[s] = true
            state.keptSlots.append(s)
        }
        try plan.bind(feeds, into: state)
        setGemmThreads(options.resolvedThreads)
        return try options.teamKernels ? withTeamKernels { try plan.execute(state, wantedSlots, profiler: profiler) }
            : plan.execute(state, wantedSlots, profiler: profiler)
    }

    /// Starts (or restarts) timing every operator of the runs that follow.
    public func startProfiling() {
        profiler.start(steps: compiled.steps.count)
    }

    /// Wall time per run of each operator type (as in `plan`) since `startProfiling`, largest
    /// first: seconds per run and the number of plan steps of that type. Empty when not profiling.
    public func profile() -> [(operator: String, secondsPerRun: Double, steps: Int)] {
        guard let stepSeconds = profiler.meanSeconds() else { return [] }
        var seconds: [String: Double] = [:], counts: [String: Int] = [:]
        for (name, t) in zip(plan, stepSeconds) {
            seconds[name, default: 0] += t
            counts[name, default: 0] += 1
        }
        return seconds.map { (operator: $0.key, secondsPerRun: $0.value, steps: counts[$0.key]!) }
            .sorted { $0.secondsPerRun > $1.secondsPerRun }
    }

    /// The mean number of plan steps per run since `startProfiling` that computed only from
    /// shapes and constants as in the run before and reused that run's outputs (0 when not
    /// profiling).
    public func reusedStepsPerRun() -> Double {
        profiler.meanReused() ?? 0
    }

    /// Wall time per run of each plan step since `startProfiling`, in plan order: the node's
    /// name (fused nodes carry the name of what they replaced, with a suffix) and its operator
    /// as in `plan`. Empty when not profiling.
    public func stepProfile() -> [(node: String, operator: String, secondsPerRun: Double)] {
        guard let stepSeconds = profiler.meanSeconds() else { return [] }
        return zip(zip(compiled.steps, plan), stepSeconds).map { ($0.0.node.name, $0.1, $1) }
    }
}

enum ProcessInfoCores {
    static let count: Int = {
        #if canImport(Glibc)
        return max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
        #else
        return 1
        #endif
    }()
}
#if canImport(Glibc)
import Glibc
#endif
