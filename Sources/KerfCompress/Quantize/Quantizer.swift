import FoundationEssentials
import KerfCore
import KerfGraph
import KerfRuntime

/// Quantizes `model`'s Conv, MatMul and Gemm weights to int8 as `options` says (in the formats
/// of docs/quantization.md) and returns what it did. Static mode and `autoTolerance` need `calibration`; with
/// it, dynamic mode also reports SQNR and agreement. Agreement with the float model is measured
/// on `validation` when given, else on `calibration`. The model is changed only when the call
/// succeeds. Progress counts batches of each pass over the data.
public func quantize(_ model: Model, options: QuantizeOptions = QuantizeOptions(), calibration: CalibrationSource? = nil,
                     validation: CalibrationSource? = nil, progress: ProgressHandler? = nil) throws -> QuantizeReport {
    try quantize(model, options: options, calibration: calibration, validation: validation, progress: progress, activationRanges: nil)
}

/// `quantize` with static mode's activation ranges given (by tensor name, as quantization-aware
/// training learned them) instead of calibrated: a tensor without one stays float, and
/// `calibration` then serves the report's comparisons only.
func quantize(_ model: Model, options: QuantizeOptions, calibration: CalibrationSource?, validation: CalibrationSource?,
              progress: ProgressHandler?, activationRanges: [String: (low: Float, high: Float)]?) throws -> QuantizeReport {
    try validate(options, hasData: calibration != nil || (activationRanges != nil && options.autoTolerance == nil && options.smoothQuantAlpha == nil))
    let opset = model.defaultOpset
    let neededOpset = options.mode == .static ? 13 : 11
    if opset < neededOpset { try checkOpsetUpgrade(model.graph, from: opset, to: neededOpset) }
    var report = QuantizeReport(options: options, opset: opset)
    report.opsetAfter = max(opset, neededOpset)
    report.bytesBefore = try model.serialized().count

    var opsets = model.opsetImports.filter { !($0.domain.isEmpty || $0.domain == "ai.onnx") }
    opsets.append(OpsetImport(domain: "", version: report.opsetAfter))
    let setup = RunSetup(opsets: opsets, irVersion: model.irVersion, session: options.session)

    // Every rewrite works on private copies: the caller's graph changes only at the end.
    let float = model.graph.copy()
    float.applyPortableRewrites(opset: opset)
    if let alpha = options.smoothQuantAlpha, let calibration {
        report.smoothed = try smoothActivations(float, alpha: alpha, setup: setup, source: calibration, options: options, progress: progress)
    }
    let (targets, skipped) = try quantTargets(float, options: options)
    report.float = skipped.map { QuantizeReport.FloatNode(name: $0.name, reason: $0.reason) }

    var params: [String: AffineParams] = [:]
    if options.mode == .static {
        let plan = ActivationPlan(float, targets: targets)
        if let activationRanges {
            for name in plan.tensors.sorted() {
                // A tensor without a range (not float, never observed) stays float, as calibration leaves it.
                guard let r = activationRanges[name] else { continue }
                guard r.low.isFinite && r.high.isFinite else {
                    throw KerfError.invalidArgument("activation '\(name)' has the range [\(r.low), \(r.high)]")
                }
                params[name] = AffineParams(low: r.low, high: r.high, type: options.activationType)
                report.activations.append(QuantizeReport.Activation(name: name, min: r.low, max: r.high, low: min(r.low, 0),
                                                                    high: max(r.high, 0), scale: 0, zeroPoint: 0))
            }
        } else if let calibration {
            let stats = try collectStatistics(float, setup: setup, values: plan.tensors.sorted(), source: calibration,
                                              options: options, progress: progress)
            for name in plan.tensors.sorted() {
                guard let s = stats[name], s.observed else { continue }
                guard s.nonFinite == 0 else { throw KerfError.invalidArgument("activation '\(name)' is NaN or infinite on the calibration data") }
                let range = calibratedRange(s, method: options.method, activation: options.activationType)
                params[name] = AffineParams(low: range.low, high: range.high, type: options.activationType)
                report.activations.append(QuantizeReport.Activation(name: name, min: s.min, max: s.max, low: range.low, high: range.high,
                                                                    scale: 0, zeroPoint: 0))
            }
        }
        shareParameters(&params, plan: plan, graph: float)
        for i in report.activations.indices {
            let p = params[report.activations[i].name]!
            report.activations[i].scale = p.scale
            report.activations[i].zeroPoint = p.zeroPoint
        }
    }

    // Quantize; in auto mode put the worst node back to float until the tolerance holds.
    var keptFloat: [Int: String] = [:]
    var embeddingsKeptFloat: [QuantizeReport.FloatNode] = []
    var quantized: Graph, nodes: [QuantizedNode], comparison: Comparison?
    while true {
        let active = targets.filter { keptFloat[$0.index] == nil }
        quantized = float.copy()
        switch options.mode {
        case .static: nodes = try rewriteStatic(quantized, targets: active, plan: ActivationPlan(float, targets: active), params: params, options: options)
        case .dynamic: nodes = try rewriteDynamic(quantized, targets: active, options: options)
        }
        let embeddings = try quantizeEmbeddings(quantized, options: options)
        report.embeddings = embeddings.quantized
        embeddingsKeptFloat = embeddings.float
        guard let calibration else { comparison = nil; break }
        comparison = try compareGraphs(float: float, quantized: quantized, setup: setup,
                                       pairs: nodes.map { ($0.floatOutput, $0.quantizedOutput) }, source: calibration, progress: progress)
        guard let tolerance = options.autoTolerance, comparison!.outputs.relativeError > tolerance,
              let worst = nodes.min(by: { sqnr(comparison!, $0) < sqnr(comparison!, $1) }) else { break }
        keptFloat[worst.target.index] = "auto: output SQNR \(rounded(sqnr(comparison!, worst), 1)) dB, the lowest "
            + "while the model's relative error was \(rounded(comparison!.outputs.relativeError, 4)) > \(tolerance)"
    }

    report.float += embeddingsKeptFloat
    for t in targets where keptFloat[t.index] != nil {
        report.float.append(QuantizeReport.FloatNode(name: t.node.name.isEmpty ? t.node.outputs[0] : t.node.name, reason: keptFloat[t.index]!))
    }
    report.nodes = nodes.map { n in
        QuantizeReport.NodeEntry(name: n.target.node.name, opType: n.target.node.opType, weight: n.target.weight,
                                 weightScaleMin: n.weightScales.min() ?? 0, weightScaleMax: n.weightScales.max() ?? 0,
                                 weightScales: n.weightScales.count, inputScale: n.input?.scale, inputZeroPoint: n.input?.zeroPoint,
                                 outputScale: n.output?.scale, outputZeroPoint: n.output?.zeroPoint,
                                 sqnrDb: comparison.map { sqnr($0, n) })
    }
    if let c = comparison { report.calibrationBatches = c.batches }
    var measured = comparison.map { (data: "calibration", comparison: $0) }
    if let validation {
        measured = (data: "validation", comparison: try compareGraphs(float: float, quantized: quantized, setup: setup,
                                                                      pairs: [], source: validation, progress: progress))
    }
    if let measured {
        let c = measured.comparison
        report.agreement = QuantizeReport.Agreement(
            data: measured.data, samples: c.samples, top1Agreement: c.agreeing.map { c.samples > 0 ? Double($0) / Double(c.samples) : 0 },
            cosine: c.outputs.cosine, maxAbsError: c.outputs.maxAbs, relativeError: c.outputs.relativeError, sqnrDb: c.outputs.sqnr)
    }

    // Commit.
    let g = model.graph
    let names = quantized.valueNames
    g.nodes = quantized.nodes
    g.initializers = quantized.initializers
    g.valueInfo = quantized.valueInfo.filter { names.contains($0.name) }
    if report.opsetAfter != opset {
        model.opsetImports = model.opsetImports.filter { !($0.domain.isEmpty || $0.domain == "ai.onnx") }
            + [OpsetImport(domain: "", version: report.opsetAfter)]
    }
    report.bytesAfter = try model.serialized().count
    report.sizeRatio = report.bytesBefore > 0 ? Double(report.bytesAfter) / Double(report.bytesBefore) : 1
    return report
}

/// `x` rounded to `digits` decimals (for messages).
private func rounded(_ x: Double, _ digits: Int) -> Double {
    let f = (0..<digits).reduce(1.0) { p, _ in p * 10 }
    return (x * f).rounded() / f
}

private func sqnr(_ c: Comparison, _ n: QuantizedNode) -> Double { c.values[n.floatOutput]?.sqnr ?? 200 }

/// Gives each output of a data-movement op its input's parameters (in graph order, so chains
/// resolve to the first tensor's).
private func shareParameters(_ params: inout [String: AffineParams], plan: ActivationPlan, graph: Graph) {
    for n in graph.nodes {
        for o in n.outputs {
            if let source = plan.sameParameters[o], let p = params[source], params[o] != nil { params[o] = p }
        }
    }
}

private func validate(_ o: QuantizeOptions, hasData: Bool) throws {
    if o.mode == .static && !hasData { throw KerfError.invalidArgument("static quantization needs calibration data") }
    if o.autoTolerance != nil && !hasData { throw KerfError.invalidArgument("auto tolerance needs calibration data") }
    if o.smoothQuantAlpha != nil && !hasData { throw KerfError.invalidArgument("SmoothQuant needs calibration data") }
    if let t = o.autoTolerance, !(t.isFinite && t >= 0) { throw KerfError.invalidArgument("auto tolerance must be >= 0, got \(t)") }
    if let a = o.smoothQuantAlpha, !(a >= 0 && a <= 1) { throw KerfError.invalidArgument("SmoothQuant alpha must be in [0, 1], got \(a)") }
    if case .percentile(let p) = o.method, !(p > 0 && p <= 100) {
        throw KerfError.invalidArgument("percentile must be in (0, 100], got \(p)")
    }
    guard o.histogramBins >= 256, o.histogramBins % 2 == 0, o.histogramBins <= 1 << 16 else {
        throw KerfError.invalidArgument("histogram bins must be even and in [256, 65536], got \(o.histogramBins)")
    }
}

/// Ops whose meaning changed between opsets 11/12 and 13 (axes or splits moved to inputs,
/// Softmax's axis semantics): a model using them cannot simply import opset 13.
private let changedAtOpset13: Set<String> = ["Softmax", "LogSoftmax", "Hardmax", "Split", "Squeeze", "Unsqueeze", "ReduceSum"]

/// Throws unless raising the default opset from `from` to `to` keeps `graph`'s meaning.
func checkOpsetUpgrade(_ graph: Graph, from: Int, to: Int) throws {
    let convert = "convert it first, e.g. onnx.version_converter.convert_version(model, \(to))"
    guard from >= 11 else {
        throw KerfError.unsupported("the model imports opset \(from); quantization needs opset \(to): \(convert)")
    }
    guard to >= 13 else { return }
    if let n = graph.nodes.first(where: { $0.isDefaultDomain && changedAtOpset13.contains($0.opType) }) {
        throw KerfError.unsupported("the model imports opset \(from) and uses \(n.opType), whose definition changed at opset 13, "
                                    + "which static quantization needs: \(convert)")
    }
}
