import KerfCore
import KerfGraph
import KerfRuntime

/// What sessions of a graph copy need besides the graph.
struct RunSetup {
    var opsets: [OpsetImport]
    var irVersion: Int
    var session: SessionOptions
}

/// Runs a private copy of `graph` that also outputs `values`, over every batch of `source`,
/// handing each batch's tensors for `values` (in that order) and for the graph outputs to `body`.
/// `step` names the pass in progress messages; progress counts batches.
func runBatches(_ graph: Graph, setup: RunSetup, values: [String], source: CalibrationSource,
                step: String, progress: ProgressHandler?,
                _ body: (_ values: [Tensor], _ outputs: [Tensor]) throws -> Void) throws {
    let session = try sessionWithOutputs(graph, setup: setup, values: values)
    let outputNames = graph.outputs.map(\.name)
    let total = source.batchCount ?? 0
    var done = 0
    try source.forEachBatch { feeds in
        let ys = try session.run(feeds, outputNames: values + outputNames)
        try body(Array(ys[..<values.count]), Array(ys[values.count...]))
        done += 1
        if let progress, !progress(done, total, step) { throw KerfError.cancelled("quantization cancelled") }
    }
    guard done > 0 else { throw KerfError.invalidArgument("the calibration data has no batches") }
}

/// Streams `values` of the float graph through `ActivationStatistics` over all batches.
/// Values that are not float32 are left out of the result.
func collectStatistics(_ graph: Graph, setup: RunSetup, values: [String], source: CalibrationSource, options: QuantizeOptions,
                       progress: ProgressHandler?) throws -> [String: ActivationStatistics] {
    let histogram: Int? = options.method == .minMax ? nil : options.histogramBins
    var stats = Dictionary(values.map { ($0, ActivationStatistics(bins: histogram)) }, uniquingKeysWith: { a, _ in a })
    try runBatches(graph, setup: setup, values: values, source: source, step: "calibrating",
                   progress: progress) { ys, _ in
        for (name, y) in zip(values, ys) {
            guard y.dtype == .float else { stats[name] = nil; continue }
            y.withElements(as: Float.self) { stats[name]?.add($0) }
        }
    }
    return stats
}

/// How a quantized graph compares with the float graph on the same batches.
struct Comparison {
    /// Over all float outputs, joined.
    var outputs = ErrorAccumulator()
    /// Per compared value pair (float name), for SQNR.
    var values: [String: ErrorAccumulator] = [:]
    var samples = 0
    var batches = 0
    /// Samples whose first output predicts the same class in both (nil when output 0 is not a
    /// label or a [samples, classes] score).
    var agreeing: Int? = 0
}

/// Runs both graphs over `source` and accumulates the error of the quantized outputs and of
/// each pair (float value, quantized value) in `pairs`.
func compareGraphs(float: Graph, quantized: Graph, setup: RunSetup, pairs: [(String, String)],
                   source: CalibrationSource, progress: ProgressHandler?) throws -> Comparison {
    var result = Comparison()
    let floatSession = try sessionWithOutputs(float, setup: setup, values: pairs.map(\.0))
    let quantizedSession = try sessionWithOutputs(quantized, setup: setup, values: pairs.map(\.1))
    let outputNames = float.outputs.map(\.name)
    let total = source.batchCount ?? 0
    var done = 0
    try source.forEachBatch { feeds in
        let y0 = try floatSession.run(feeds, outputNames: pairs.map(\.0) + outputNames)
        let y = try quantizedSession.run(feeds, outputNames: pairs.map(\.1) + outputNames)
        for (k, pair) in pairs.enumerated() where y[k].dtype == .float && y0[k].dtype == .float {
            y[k].withElements(as: Float.self) { a in y0[k].withElements(as: Float.self) { b in result.values[pair.0, default: ErrorAccumulator()].add(a, b) } }
        }
        for k in pairs.count..<y.count where y[k].dtype == .float && y0[k].dtype == .float {
            y[k].withElements(as: Float.self) { a in y0[k].withElements(as: Float.self) { b in result.outputs.add(a, b) } }
        }
        if let first = y.dropFirst(pairs.count).first, let first0 = y0.dropFirst(pairs.count).first,
           let p = classes(first), let p0 = classes(first0), result.agreeing != nil {
            result.agreeing! += zip(p, p0).filter { $0 == $1 }.count
            result.samples += p0.count
        } else {
            result.agreeing = nil
            result.samples += y0.dropFirst(pairs.count).first?.shape.first ?? 0
        }
        done += 1
        result.batches = done
        if let progress, !progress(done, total, "evaluating") { throw KerfError.cancelled("quantization cancelled") }
    }
    return result
}

/// A session of a private copy of `graph` that also outputs `values`.
private func sessionWithOutputs(_ graph: Graph, setup: RunSetup, values: [String]) throws -> Session {
    let g = graph.copy()
    let declared = Set(g.outputs.map(\.name))
    for v in Set(values) where !declared.contains(v) { g.outputs.append(ValueInfo(name: v, type: nil)) }
    return try Session(graph: g, opsets: setup.opsets, irVersion: setup.irVersion, options: setup.session)
}

/// Classes predicted per sample: the values of an integer output, the arg-max of a
/// [samples, classes] float output; nil otherwise.
private func classes(_ y: Tensor) -> [Int]? {
    if y.dtype == .float && y.rank != 2 { return nil }
    return try? predictions(y)
}
