import KerfCore
import KerfKernels

/// A model prepared for running: nodes sorted, operators built, values mapped to slots.
/// A session may be used by one thread at a time; the model it came from is not mutated.
///
/// A session holds no reference to its model or graph, only to the constants it runs with:
/// constant weights that operators prepared a copy of to run from (packed float MatMul/Gemm
/// weights, made at their first run) are not kept at all once prepared, so freeing the model
/// frees the original weights.
public final class Session {
    public let options: SessionOptions
    public let inputs: [ValueInfo]
    public let outputs: [ValueInfo]

    /// The plan's nodes, in order (for names in messages, `plan` and profiles).
    private var nodes: [Node] = []
    /// The plan's slots and operators as `run` reads them.
    private var schedule = Schedule(ops: [], inputs: [], outputs: [], releases: [])

    /// The plan in flat buffers, read by `run` without reference counting (walking per-step
    /// arrays retains and releases each of them per step): per step, ranges into `slots` of its
    /// inputs (-1: omitted; `moves` tells which move into the arguments), outputs and releases.
    private final class Schedule {
        struct Entry {
            let inputs: Range<Int>, outputs: Range<Int>, releases: Range<Int>
        }
        let entries: UnsafeMutableBufferPointer<Entry>
        let slots: UnsafeMutableBufferPointer<Int>
        let moves: UnsafeMutableBufferPointer<Bool>
        let ops: UnsafeMutableBufferPointer<any Operator>

        /// Per step: its operator, input slots (-1: omitted), output slots (-1: omitted) and the
        /// slots whose last reader it is. An input moves into the arguments where this is the
        /// slot's last read, here and in the plan.
        init(ops: [any Operator], inputs: [[Int]], outputs: [[Int]], releases: [[Int]]) {
            var entries: [Entry] = [], slots: [Int] = [], moves: [Bool] = []
            func add(_ list: [Int], _ moved: [Bool]) -> Range<Int> {
                let start = slots.count
                slots += list
                moves += moved
                return start..<slots.count
            }
            for i in ops.indices {
                let released = Set(releases[i]), ins = inputs[i]
                let moved = ins.indices.map { k in released.contains(ins[k]) && !ins[(k + 1)...].contains(ins[k]) }
                entries.append(Entry(inputs: add(ins, moved), outputs: add(outputs[i], outputs[i].map { _ in false }),
                                     releases: add(releases[i], releases[i].map { _ in false })))
            }
            func buffer<T>(_ values: [T]) -> UnsafeMutableBufferPointer<T> {
                let b = UnsafeMutableBufferPointer<T>.allocate(capacity: max(values.count, 1))
                _ = b.initialize(from: values)
                return UnsafeMutableBufferPointer(rebasing: b[0..<values.count])
            }
            self.entries = buffer(entries)
            self.slots = buffer(slots)
            self.moves = buffer(moves)
            self.ops = buffer(ops)
        }

        deinit {
            ops.deinitialize()
            for b in [UnsafeMutableRawPointer(entries.baseAddress), UnsafeMutableRawPointer(slots.baseAddress),
                      UnsafeMutableRawPointer(moves.baseAddress), UnsafeMutableRawPointer(ops.baseAddress)] { b?.deallocate() }
        }
    }
    /// Wall seconds spent in each step, summed over runs, while profiling is on (nil when off).
    private var stepSeconds: [Double]? = nil
    private var profiledRuns = 0
    private var slotOfName: [String: Int] = [:]
    private var slotCount = 0
    private var maxInputCount = 0
    /// One entry per slot: the constants in place, nil elsewhere.
    private var initialValues: [Tensor?] = []
    /// The values of the run in progress, one per slot. Between runs it equals `initialValues`
    /// (kept apart from it, not copied per run: the constants stay referenced twice, so no
    /// operator takes one for an in-place write).
    private var values: [Tensor?] = []
    /// A run's argument array, kept for its capacity (empty between runs).
    private var args: [Tensor?] = []
    /// Slots a run may set that hold no constant: cleared after every run.
    private var runSlots: [Int] = []
    /// The slots of the graph outputs, in order.
    private var graphOutputSlots: [Int] = []
    /// Declared graph inputs by name (initializer-backed ones included: feeds may override them):
    /// their slot, declaration, and whether they are runtime inputs (not initializer-backed).
    private var feedTargets: [String: (slot: Int, info: ValueInfo, isRuntimeInput: Bool)] = [:]
    /// The slots the run in progress has fed so far (empty between runs).
    private var bound: [Int] = []
    /// The graph's initializer names (for the message when one is fed but cannot be).
    private let initializerNames: Set<String>
    /// Slots of the constants operators took (`OperatorContext.takeConstant`): not kept here.
    private var taken = Set<Int>()
    /// What the session's tensors are charged to (`SessionOptions.memoryLimit`; nil: no limit).
    private let budget: MemoryBudget?

    public convenience init(model: Model, options: SessionOptions = SessionOptions()) throws {
        try self.init(graph: model.graph, opsets: model.opsetImports, irVersion: model.irVersion, options: options)
    }

    /// `irVersion` matters for initializers that are also graph inputs: from IR 4 on a feed may
    /// override them; before IR 4 every initializer had to be listed as an input, and (as in ONNX
    /// Runtime) they are constants.
    public init(graph source: Graph, opsets: [OpsetImport], irVersion: Int = 8, options: SessionOptions = SessionOptions()) throws {
        self.options = options
        budget = options.makeBudget()
        let scope = MemoryLimit.enter(budget)
        defer { MemoryLimit.leave(scope) }
        self.inputs = source.runtimeInputs
        self.outputs = source.outputs
        let fixed = irVersion < 4 ? Set(source.initializers.map(\.name)) : []
        let declared = Dictionary(source.inputs.filter { !fixed.contains($0.name) }.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        self.initializerNames = Set(source.initializers.map(\.name))
        let defaultOpset = opsets.first { $0.domain.isEmpty || $0.domain == "ai.onnx" }?.version ?? 0

        // Loading checks this too; a graph built in Swift is checked here. The graph passes
        // index the inputs and outputs of the nodes they match.
        try source.validateNodeArity()
        let graph = options.optimizationLevel > 0
            ? try GraphOptimizer.optimize(source, opsets: opsets, constantInitializers: irVersion < 4, options: options) : source

        func slot(_ name: String) -> Int {
            if let s = slotOfName[name] { return s }
            slotOfName[name] = slotCount
            slotCount += 1
            return slotCount - 1
        }
        var constants: [Int: Tensor] = [:]
        for i in graph.initializers { constants[slot(i.name)] = i.tensor }
        for i in graph.inputs { _ = slot(i.name) }
        // Constants no feed can replace: operators may take them (`OperatorContext.takeConstant`).
        let fed = Set(declared.keys.compactMap { slotOfName[$0] })
        let takeable = Set(constants.keys).subtracting(fed)

        let order = try Session.topologicalOrder(graph)
        var built: [(node: Node, op: Operator, inputs: [Int], outputs: [Int], taken: Set<Int>)] = []
        for node in order {
            let inputSlots = node.inputs.map { $0.isEmpty ? -1 : slot($0) }
            let known = inputSlots.map { $0 >= 0 ? constants[$0] : nil }
            let opset: Int
            if node.isDefaultDomain {
                opset = defaultOpset
            } else if let v = opsets.first(where: { $0.domain == node.domain })?.version {
                opset = v
            } else if node.domain == FusedQuantizedOps.domain && graph !== source {
                opset = 1  // the optimizer's own fused operators
            } else {
                throw KerfError.invalidModel("\(node.label) uses domain '\(node.domain)', which the model does not import")
            }
            let ownership = ConstantOwnership(takeable: Set(inputSlots.indices.filter { takeable.contains(inputSlots[$0]) }))
            let context = OperatorContext(node: node, opset: opset, constantInputs: known, options: options, ownership: ownership)
            let op: Operator
            do {
                op = try OperatorRegistry.makeOperator(context)
            } catch let e as KerfError {
                throw e.prefixed(node.label)
            }
            built.append((node, op, inputSlots, node.outputs.map { $0.isEmpty ? -1 : slot($0) }, ownership.taken))
        }
        // Every graph output must be produced by something.
        for o in graph.outputs where slotOfName[o.name] == nil {
            throw KerfError.invalidModel("graph output '\(o.name)' is not produced by any node")
        }
        let graphOutputs = Set(graph.outputs.compactMap { slotOfName[$0.name] })
        // Constants that every reader took are not kept: those readers get nil for them.
        var read = Set<Int>(), untaken = Set<Int>()
        for b in built {
            for (k, s) in b.inputs.enumerated() where s >= 0 {
                read.insert(s)
                if !b.taken.contains(k) { untaken.insert(s) }
            }
        }
        for s in Array(constants.keys) where read.contains(s) && !untaken.contains(s) && !graphOutputs.contains(s) {
            constants[s] = nil
            taken.insert(s)
        }
        for i in built.indices { built[i].inputs = built[i].inputs.map { taken.contains($0) ? -1 : $0 } }
        // Lifetimes: a slot is released after its last reader, unless it is a graph output or a constant.
        var lastReader: [Int: Int] = [:]
        for (i, b) in built.enumerated() { for s in b.inputs where s >= 0 { lastReader[s] = i } }
        let keep = graphOutputs.union(constants.keys)
        var releases = [[Int]](repeating: [], count: built.count)
        for (s, i) in lastReader where !keep.contains(s) { releases[i].append(s) }
        initialValues = [Tensor?](repeating: nil, count: slotCount)
        for (s, t) in constants { initialValues[s] = t }
        values = initialValues
        runSlots = (0..<slotCount).filter { initialValues[$0] == nil }
        graphOutputSlots = graph.outputs.map { slotOfName[$0.name]! }
        nodes = built.map(\.node)
        schedule = Schedule(ops: built.map(\.op), inputs: built.map(\.inputs), outputs: built.map(\.outputs), releases: releases)
        maxInputCount = built.map(\.inputs.count).max() ?? 0
        let runtimeNames = Set(inputs.map(\.name))
        for (name, info) in declared {
            guard let slot = slotOfName[name] else { continue }
            feedTargets[name] = (slot, info, runtimeNames.contains(name))
        }
        bound.reserveCapacity(declared.count)
    }

    /// The operators a run executes, in order, as "OpType" (default domain) or "domain.OpType"
    /// (graph optimizations included: fused operators appear under their own names).
    public var plan: [String] {
        nodes.map { $0.isDefaultDomain ? $0.opType : "\($0.domain).\($0.opType)" }
    }

    /// Runs the graph. `feeds` maps runtime input names to tensors; `outputNames` (default: the
    /// graph outputs) selects what to return, in that order.
    public func run(_ feeds: [String: Tensor], outputNames: [String]? = nil) throws -> [Tensor] {
        try run(feeding: feeds.map { (name: $0.key, tensor: $0.value) }, outputNames: outputNames)
    }

    /// `run` with the feeds as (name, tensor) pairs, each name at most once (an error
    /// otherwise): callers that have them so (the C API) build no dictionary per run.
    public func run(feeding feeds: [(name: String, tensor: Tensor)], outputNames: [String]? = nil) throws -> [Tensor] {
        let scope = MemoryLimit.enter(budget)
        defer { MemoryLimit.leave(scope) }
        let wantedSlots = try outputNames?.map { name -> Int in
            guard let s = slotOfName[name] else { throw KerfError.invalidArgument("the model has no value named '\(name)'") }
            guard !taken.contains(s) else {
                throw KerfError.invalidArgument("'\(name)' is a constant the session keeps only in a prepared form: read it from the model")
            }
            return s
        } ?? graphOutputSlots
        // Moved out of the property for the run (a local array, no copy, no access checks).
        var values: [Tensor?] = []
        swap(&values, &self.values)
        defer {
            reset(&values)
            swap(&values, &self.values)
        }
        try bindFeeds(feeds, into: &values)
        setGemmThreads(options.resolvedThreads)
        // The argument array is kept between runs (emptied, its capacity kept).
        var args: [Tensor?] = []
        swap(&args, &self.args)
        defer {
            args.removeAll(keepingCapacity: true)
            swap(&args, &self.args)
        }
        args.reserveCapacity(maxInputCount)
        if stepSeconds != nil { profiledRuns += 1 }
        let schedule = self.schedule, profiling = stepSeconds != nil
        let slots = schedule.slots, moves = schedule.moves
        for index in schedule.entries.indices {
            let entry = schedule.entries[index]
            for p in entry.inputs {
                let s = slots[p]
                if s < 0 {
                    args.append(nil)
                    continue
                }
                guard values[s] != nil else {
                    let node = nodes[index]
                    throw KerfError.invalidArgument("\(node.label): input '\(node.inputs[p - entry.inputs.lowerBound])' has no value (a missing feed?)")
                }
                // Moved, not copied, where this is the value's last read (no retain and release).
                args.append(moves[p] ? values[s].take() : values[s])
            }
            // Values this step reads last are handed over: the operator may write over them.
            for p in entry.releases { values[slots[p]] = nil }
            var results: [Tensor]
            let start = profiling ? monotonicSeconds() : 0
            do {
                results = try schedule.ops[index].run(consuming: &args)
            } catch let e as KerfError {
                throw e.prefixed(nodes[index].label)
            }
            if profiling { stepSeconds![index] += monotonicSeconds() - start }
            args.removeAll(keepingCapacity: true)
            // Each result moves out of the array into its slot (last first).
            var k = results.count
            while k > 0 {
                k -= 1
                let result = results.removeLast()
                if k < entry.outputs.count, slots[entry.outputs.lowerBound + k] >= 0 { values[slots[entry.outputs.lowerBound + k]] = result }
            }
        }
        return try wantedSlots.enumerated().map { i, s in
            guard let t = values[s] else { throw KerfError.internal("output '\(outputNames?[i] ?? outputs[i].name)' was not computed") }
            return t
        }
    }

    /// Puts `values` back as it is between runs: nothing but the constants (feeds may have
    /// overridden some).
    private func reset(_ values: inout [Tensor?]) {
        for s in runSlots { values[s] = nil }
        for s in bound where initialValues[s] != nil { values[s] = initialValues[s] }
        bound.removeAll(keepingCapacity: true)
    }

    /// Starts (or restarts) timing every operator of the runs that follow.
    public func startProfiling() {
        stepSeconds = [Double](repeating: 0, count: nodes.count)
        profiledRuns = 0
    }

    /// Wall time per run of each operator type (as in `plan`) since `startProfiling`, largest
    /// first: seconds per run and the number of plan steps of that type. Empty when not profiling.
    public func profile() -> [(operator: String, secondsPerRun: Double, steps: Int)] {
        guard let stepSeconds, profiledRuns > 0 else { return [] }
        var seconds: [String: Double] = [:], counts: [String: Int] = [:]
        for (name, t) in zip(plan, stepSeconds) {
            seconds[name, default: 0] += t / Double(profiledRuns)
            counts[name, default: 0] += 1
        }
        return seconds.map { (operator: $0.key, secondsPerRun: $0.value, steps: counts[$0.key]!) }
            .sorted { $0.secondsPerRun > $1.secondsPerRun }
    }

    /// Wall time per run of each plan step since `startProfiling`, in plan order: the node's
    /// name (fused nodes carry the name of what they replaced, with a suffix) and its operator
    /// as in `plan`. Empty when not profiling.
    public func stepProfile() -> [(node: String, operator: String, secondsPerRun: Double)] {
        guard let stepSeconds, profiledRuns > 0 else { return [] }
        return zip(zip(nodes, plan), stepSeconds).map { ($0.0.name, $0.1, $1 / Double(profiledRuns)) }
    }

    /// Puts each feed in its slot (one dictionary lookup per feed: this runs on every call) and
    /// records the slots in `bound`, so that `reset` finds them whether or not binding failed.
    private func bindFeeds(_ feeds: [(name: String, tensor: Tensor)], into values: inout [Tensor?]) throws {
        var runtimeFeeds = 0
        for (name, tensor) in feeds {
            guard let target = feedTargets[name] else {
                if initializerNames.contains(name) {
                    throw KerfError.invalidArgument("'\(name)' is an initializer of an IR version < 4 model, where initializers are constants and cannot be fed")
                }
                let names = inputs.map { "'\($0.name)'" }.joined(separator: ", ")
                throw KerfError.invalidArgument("the model has no input named '\(name)' (inputs: \(names))")
            }
            guard !bound.contains(target.slot) else { throw KerfError.invalidArgument("input '\(name)' is fed twice") }
            try Session.check(tensor, against: target.info)
            values[target.slot] = tensor
            bound.append(target.slot)
            if target.isRuntimeInput { runtimeFeeds += 1 }
        }
        if runtimeFeeds < inputs.count {
            for info in inputs where !feeds.contains(where: { $0.name == info.name }) {
                throw KerfError.invalidArgument("input '\(info.name)' was not fed")
            }
        }
    }

    /// Checks a fed tensor against the declared dtype, rank and fixed dims.
    static func check(_ t: Tensor, against info: ValueInfo) throws {
        guard case .tensor(let dtype, let shape)? = info.type else {
            if let kind = { if case .other(let k)? = info.type { return k } else { return nil } }() {
                throw KerfError.unsupported("input '\(info.name)' is a \(kind), which Kerf cannot feed")
            }
            return
        }
        if let dtype, dtype != t.dtype {
            throw KerfError.shapeMismatch("input '\(info.name)' must be \(dtype), got \(t.dtype)")
        }
        guard let shape else { return }
        // The message is built only on failure: this check runs on every feed of every run.
        func declared() -> String { "[" + shape.map(\.description).joined(separator: ", ") + "]" }
        guard shape.count == t.rank else {
            throw KerfError.shapeMismatch("input '\(info.name)' must have rank \(shape.count) \(declared()), got shape \(t.shape)")
        }
        for (d, dim) in shape.enumerated() {
            if case .value(let v) = dim, v != t.shape[d] {
                throw KerfError.shapeMismatch("input '\(info.name)' must have shape \(declared()), got \(t.shape)")
            }
        }
    }

    /// Kahn's algorithm over value dependencies; ties keep file order. Throws on cycles and on
    /// inputs that nothing defines.
    static func topologicalOrder(_ graph: Graph) throws -> [Node] {
        var defined = Set(graph.inputs.map(\.name)).union(graph.initializers.map(\.name))
        defined.insert("")
        var producers: [String: Int] = [:]
        for (i, n) in graph.nodes.enumerated() { for o in n.outputs where !o.isEmpty { producers[o] = i } }
        var pending = [Int](repeating: 0, count: graph.nodes.count)
        var consumers: [Int: [Int]] = [:]
        for (i, n) in graph.nodes.enumerated() {
            for name in Set(n.inputs) where !defined.contains(name) {
                guard let p = producers[name] else {
                    throw KerfError.invalidModel("\(n.label) reads '\(name)', which no node, input or initializer defines")
                }
                pending[i] += 1
                consumers[p, default: []].append(i)
            }
        }
        var ready = (0..<graph.nodes.count).filter { pending[$0] == 0 }
        var order: [Node] = []
        var cursor = 0
        while cursor < ready.count {
            let i = ready[cursor]
            cursor += 1
            order.append(graph.nodes[i])
            for c in consumers[i] ?? [] {
                pending[c] -= 1
                if pending[c] == 0 { ready.append(c) }
            }
        }
        guard order.count == graph.nodes.count else { throw KerfError.invalidModel("the graph has a cycle") }
        return order
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
