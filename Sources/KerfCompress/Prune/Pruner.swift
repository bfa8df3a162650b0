import FoundationEssentials
import KerfCore

/// Prunes `model`'s Conv, Gemm and MatMul weights as `options` says and returns what changed.
/// The model is changed only when the call succeeds: on any error, `KerfError.cancelled` from
/// `progress` included, it is left as it was. `progress` is called with 0 before the work and
/// after each step: a weight (magnitude, N:M) or a group of tied channels (channel).
public func prune(_ model: Model, options: PruneOptions, progress: ProgressHandler? = nil) throws -> PruneReport {
    try validate(options)
    var report = PruneReport(method: options.method.name, scope: options.scope.rawValue,
                             targetSparsity: options.method.targetSparsity(options.sparsity))
    let graph = model.graph
    (report.parametersBefore, report.nonzeroParametersBefore) = parameterCounts(graph)
    report.bytesBefore = try model.serialized().count

    switch options.method {
    case .magnitude, .nOfM:
        let weights = prunableWeights(graph, options: options, skipped: &report.skipped)
        var pruned = try zeroedWeights(weights, graph: graph, options: options, progress: progress)
        for (w, tensor) in zip(weights, pruned) {
            report.tensors.append(entry(name: w.name, node: w.node, before: graph.initializers[w.index].tensor, after: tensor))
        }
        // Commit only now that every weight is computed.
        for (w, tensor) in zip(weights, pruned) { graph.initializers[w.index].tensor = tensor }
        pruned.removeAll()
    case .channel:
        // Exporters write head counts and sizes as Constant nodes (TorchScript), store identical
        // tensors once and fan them out to several layers, through Identity nodes (TorchScript)
        // or directly (dynamo: zero biases, unit LayerNorm scales), and share one Reshape target
        // (or the Concat computing it) among all layers (dynamo); channel pruning rewrites initializers read by the block it
        // prunes. It works on a copy with Constant nodes made initializers and every reader of a
        // shared float tensor or Reshape target given a copy of its own, which replaces the
        // graph when something was pruned (copies still equal are shared again).
        let prepared = model.replacing(graph: graph.copy())
        prepared.graph.constantNodesToInitializers()
        var copies = prepared.graph.identityInitializersToCopies()
        copies.merge(prepared.graph.unshareInitializers { $0.tensor.dtype == .float }) { a, _ in a }
        prepared.graph.unshareReshapeConcats()
        copies.merge(prepared.graph.unshareInitializers(readBy: ["Reshape", "Concat", "Split"]) { $0.tensor.dtype == .int64 }) { a, _ in a }
        try pruneChannels(prepared, options: options, report: &report, progress: progress)
        if !report.tensors.isEmpty {
            prepared.graph.shareIdenticalCopies(copies)
            graph.nodes = prepared.graph.nodes
            graph.initializers = prepared.graph.initializers
            graph.inputs = prepared.graph.inputs
            graph.outputs = prepared.graph.outputs
            graph.valueInfo = prepared.graph.valueInfo
        }
    }

    if options.storeSparse { markSparseStorage(graph, report: &report) }
    (report.parametersAfter, report.nonzeroParametersAfter) = parameterCounts(graph)
    report.bytesAfter = try model.serialized().count
    let elements = report.tensors.reduce(0) { $0 + $1.shape.reduce(1, *) }
    report.overallSparsity = elements == 0 ? 0 : Double(report.tensors.reduce(0) { $0 + $1.zeros }) / Double(elements)
    return report
}

extension PruneMethod {
    /// "magnitude", "2:4", "channel".
    public var name: String {
        switch self {
        case .magnitude: return "magnitude"
        case .nOfM(let n, let m): return "\(n):\(m)"
        case .channel: return "channel"
        }
    }

    func targetSparsity(_ sparsity: Double) -> Double {
        if case .nOfM(let n, let m) = self { return 1 - Double(n) / Double(m) }
        return sparsity
    }
}

private func validate(_ o: PruneOptions) throws {
    func fraction(_ x: Double, _ what: String, upTo limit: Double = 1, inclusive: Bool = false) throws {
        guard x.isFinite, x >= 0, inclusive ? x <= limit : x < limit else {
            throw KerfError.invalidArgument("\(what) must be in [0, 1\(inclusive ? "]" : ")"), got \(x)")
        }
    }
    try fraction(o.sparsity, "sparsity")
    try fraction(o.maxTensorSparsity, "max tensor sparsity", inclusive: true)
    for (name, s) in o.perTensor { try fraction(s, "sparsity of '\(name)'") }
    guard o.minElements >= 0 else { throw KerfError.invalidArgument("min elements must be >= 0, got \(o.minElements)") }
    guard o.channelMultiple >= 0, o.channelMultiple <= 1 << 20 else {
        throw KerfError.invalidArgument("channel multiple must be in [0, 2^20], got \(o.channelMultiple)")
    }
    if case .nOfM(let n, let m) = o.method {
        guard n >= 1, n < m, m <= 256 else { throw KerfError.invalidArgument("N:M needs 1 <= N < M <= 256, got \(n):\(m)") }
    }
}

/// Calls `progress` (when given) with `done` of `total` steps; throws `KerfError.cancelled` when it
/// asks to stop.
func advance(_ progress: ProgressHandler?, _ done: Int, _ total: Int, _ message: @autoclosure () -> String) throws {
    if let progress, !progress(done, total, message()) { throw KerfError.cancelled("pruning cancelled") }
}

/// Copies of the weights with the zeros `options` asks for (same order as `weights`); one
/// progress step per weight.
private func zeroedWeights(_ weights: [PrunableWeight], graph: Graph, options: PruneOptions,
                           progress: ProgressHandler?) throws -> [Tensor] {
    try advance(progress, 0, weights.count, "\(options.method.name) pruning")
    var tensors = weights.map { graph.initializers[$0.index].tensor }
    for (w, t) in zip(weights, tensors) {
        let finite = t.withElements(as: Float.self) { $0.allSatisfy(\.isFinite) }
        guard finite else { throw KerfError.invalidModel("weight '\(w.name)' contains NaN or infinity; it cannot be pruned by magnitude") }
    }
    switch options.method {
    case .nOfM(let n, let m):
        for i in tensors.indices {
            let layout = weights[i].layout
            tensors[i].withMutableElements(as: Float.self) { keepNOfM($0, layout: layout, n: n, m: m) }
            try advance(progress, i + 1, weights.count, weights[i].name)
        }
    default:
        let counts = zeroCounts(weights, tensors: tensors, options: options)
        for i in tensors.indices {
            tensors[i].withMutableElements(as: Float.self) { zeroSmallest($0, count: counts[i]) }
            try advance(progress, i + 1, weights.count, weights[i].name)
        }
    }
    return tensors
}

/// How many elements of each tensor magnitude pruning zeroes.
/// Layer scope (and every weight in `perTensor`): round(sparsity * count) each.
/// Global scope: one magnitude threshold across the remaining weights, chosen so the zeros
/// add up to round(sparsity * their total), with no tensor above `maxTensorSparsity`.
func zeroCounts(_ weights: [PrunableWeight], tensors: [Tensor], options: PruneOptions) -> [Int] {
    func target(_ s: Double, _ n: Int) -> Int { Int((s * Double(n)).rounded()) }
    var counts = [Int](repeating: 0, count: weights.count)
    var pool: [Int] = []
    for (i, w) in weights.enumerated() {
        if let s = options.perTensor[w.name] {
            counts[i] = target(s, tensors[i].count)
        } else if options.scope == .layer {
            counts[i] = target(options.sparsity, tensors[i].count)
        } else {
            pool.append(i)
        }
    }
    var budget = target(options.sparsity, pool.reduce(0) { $0 + tensors[$1].count })
    let cap = { (i: Int) in Int((options.maxTensorSparsity * Double(tensors[i].count)).rounded(.down)) }
    // Tensors that would pass their cap are fixed at it; the rest share what remains.
    while !pool.isEmpty {
        let buffers = pool.map { i in tensors[i].withElements(as: Float.self) { $0 } }
        let threshold = magnitudeThreshold(buffers, count: budget)
        var tiesLeft = budget
        var below: [(Int, Int, Int)] = []
        for (i, b) in zip(pool, buffers) {
            let (lt, eq) = countBelow(b, threshold)
            below.append((i, lt, eq))
            tiesLeft -= lt
        }
        var capped: [Int] = []
        for (i, lt, eq) in below {
            let ties = min(eq, max(tiesLeft, 0))
            tiesLeft -= ties
            counts[i] = lt + ties
            if counts[i] > cap(i) { capped.append(i) }
        }
        if capped.isEmpty { break }
        for i in capped {
            counts[i] = cap(i)
            budget -= cap(i)
        }
        pool.removeAll { capped.contains($0) }
    }
    return counts
}

/// The report line of weight `name`, read by `node`, that went from `before` to `after`.
func entry(name: String, node: Node, before: Tensor, after: Tensor) -> PruneReport.TensorEntry {
    let zerosBefore = zeroCount(before), zeros = zeroCount(after)
    return PruneReport.TensorEntry(name: name, node: node.name, opType: node.opType, shapeBefore: before.shape,
                                   shape: after.shape, zerosBefore: zerosBefore, zeros: zeros,
                                   sparsity: after.count == 0 ? 0 : Double(zeros) / Double(after.count))
}

func zeroCount(_ t: Tensor) -> Int {
    guard t.dtype == .float else { return 0 }
    return t.withElements(as: Float.self) { w in w.reduce(0) { $0 + ($1 == 0 ? 1 : 0) } }
}

/// Elements of all initializers and how many are non-zero (float32 ones counted exactly;
/// others counted as non-zero).
func parameterCounts(_ graph: Graph) -> (Int, Int) {
    var total = 0, nonzero = 0
    for i in graph.initializers {
        total += i.tensor.count
        nonzero += i.tensor.count - zeroCount(i.tensor)
    }
    return (total, nonzero)
}

/// Marks pruned weights whose COO form (int64 linear indices + float values) is smaller than
/// their dense form for the sparse_initializer list.
private func markSparseStorage(_ graph: Graph, report: inout PruneReport) {
    let index = Dictionary(graph.initializers.enumerated().map { ($1.name, $0) }, uniquingKeysWith: { a, _ in a })
    // ONNX forbids a sparse initializer that is also listed as a graph input.
    let inputs = Set(graph.inputs.map(\.name))
    for e in report.tensors.indices {
        let entry = report.tensors[e]
        guard let i = index[entry.name], !inputs.contains(entry.name) else { continue }
        let count = entry.shape.reduce(1, *)
        let nonzero = count - entry.zeros
        if nonzero * (8 + 4) < count * 4 {
            graph.initializers[i].storedSparse = true
            report.tensors[e].storedSparse = true
        }
    }
}
