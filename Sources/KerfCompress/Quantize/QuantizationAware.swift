import KerfCore
import KerfGraph
import KerfRuntime

/// A float model prepared for quantization-aware training: every tensor `quantize` would
/// quantize in `options.mode` passes through a fake quantization node, so that training sees the
/// rounding and clipping of the int8 file it will become.
///
/// - Each embedding table `quantize` would store as int8 is read by its Gathers through a
///   per-tensor `FakeQuantizeWeight`.
/// - Each weight of a quantized Conv/MatMul/Gemm is read through
///   `kerf.training.FakeQuantizeWeight(W) -> W'` (symmetric int8, per channel along the weight's
///   output-channel axis when `options.perChannel`), exactly the values the quantizer writes.
/// - Static mode: each activation the quantizer gives a QuantizeLinear/DequantizeLinear pair is
///   read by those same readers through `kerf.training.FakeQuantize(X, low, high) -> X'`, its
///   range two float initializers `<X>_qat_low`/`_qat_high` first calibrated as `quantize`
///   calibrates (`options.method`) and then moved by training (`TrainingModeOptions
///   .quantizationRangeMomentum`). A data-movement op's output shares its input's range.
/// - Dynamic mode: each MatMul/Gemm data input is read through a `dynamic` FakeQuantize, whose
///   range is the tensor's own min and max, as DynamicQuantizeLinear computes at run time.
///
/// BatchNormalization is folded into its Conv first (with the other portable rewrites), as the
/// quantizer folds it, so the trained weights are the ones that get quantized. `quantized()`
/// turns the (trained) model into the file `quantize` writes, with the trained ranges.
public struct QuantizationAwareModel {
    /// The model with fake quantization nodes (imports `kerf.training` 1); train this one.
    public let model: Model
    public let options: QuantizeOptions
    /// The fake-quantized activations (their FakeQuantize nodes read them), sorted.
    public let activations: [String]
    /// The fake-quantized weights, in graph order.
    public let weights: [String]
    /// Nodes `quantize` keeps in float, and why.
    public let float: [QuantizeReport.FloatNode]

    static let domain = "kerf.training"

    /// Prepares a copy of `model` (unchanged itself). Static mode needs `calibration` (the
    /// initial activation ranges); auto tolerance and SmoothQuant are not available here.
    public init(_ model: Model, options: QuantizeOptions, calibration: CalibrationSource?, progress: ProgressHandler? = nil) throws {
        guard options.autoTolerance == nil else { throw KerfError.invalidArgument("quantization-aware training has no auto tolerance") }
        guard options.smoothQuantAlpha == nil else { throw KerfError.invalidArgument("quantization-aware training has no SmoothQuant") }
        if options.mode == .static && calibration == nil {
            throw KerfError.invalidArgument("static quantization-aware training needs calibration data for its initial ranges")
        }
        let opset = model.defaultOpset
        let neededOpset = options.mode == .static ? 13 : 11
        if opset < neededOpset { try checkOpsetUpgrade(model.graph, from: opset, to: neededOpset) }
        if model.graph.nodes.contains(where: { $0.domain == Self.domain }) {
            throw KerfError.invalidArgument("the model already holds kerf.training nodes")
        }
        let g = model.graph.copy()
        g.applyPortableRewrites(opset: opset)
        var (targets, skipped) = try quantTargets(g, options: options)
        if options.mode == .dynamic { targets = targets.filter { $0.node.opType != "Conv" } }
        float = skipped.map { QuantizeReport.FloatNode(name: $0.name, reason: $0.reason) }
        let types = g.inferTypes(opset: opset)
        let names = NameAllocator(g)
        self.options = options

        // Activations: tensor -> (its readers, the range initializers it uses).
        var readers: [String: Set<Int>] = [:]
        var ranges: [String: (low: String, high: String)] = [:]
        if options.mode == .static, let calibration {
            let plan = ActivationPlan(g, targets: targets)
            let setup = RunSetup(opsets: model.opsetImports, irVersion: model.irVersion, session: options.session)
            let stats = try collectStatistics(g, setup: setup, values: plan.tensors.sorted(), source: calibration, options: options,
                                              progress: progress)
            var ownRange: [String: (low: String, high: String)] = [:]
            for name in plan.tensors.sorted() {
                guard let s = stats[name], s.observed else { continue }
                guard s.nonFinite == 0 else { throw KerfError.invalidArgument("activation '\(name)' is NaN or infinite on the calibration data") }
                let r = calibratedRange(s, method: options.method, activation: options.activationType)
                ownRange[name] = (g.addConstant(name + "_qat_low", Tensor(scalar: r.low), names: names),
                                  g.addConstant(name + "_qat_high", Tensor(scalar: r.high), names: names))
            }
            for name in ownRange.keys {
                var root = name
                while let source = plan.sameParameters[root], ownRange[source] != nil { root = source }
                ranges[name] = ownRange[root]
                readers[name] = plan.readers[name]
            }
        } else if options.mode == .dynamic {
            for t in targets { readers[t.node.inputs[0], default: []].insert(t.index) }
        }
        activations = readers.keys.sorted()

        var nodes = g.nodes
        var after: [String: Node] = [:]  // tensor -> its FakeQuantize node
        let (qmin, qmax) = options.activationType.range
        for tensor in activations {
            let y = names.make(tensor + "_fake_quantized")
            var attributes = [Attribute(name: "qmin", value: .int(Int64(qmin))), Attribute(name: "qmax", value: .int(Int64(qmax)))]
            var inputs = [tensor]
            if let r = ranges[tensor] { inputs += [r.low, r.high] } else { attributes.append(Attribute(name: "dynamic", value: .int(1))) }
            after[tensor] = Node(name: names.make(tensor + "_FakeQuantize"), opType: "FakeQuantize", domain: Self.domain, inputs: inputs,
                                 outputs: [y], attributes: attributes)
            g.valueInfo.append(ValueInfo(name: y, type: types.type(of: tensor)))
            for i in readers[tensor] ?? [] { nodes[i].inputs = nodes[i].inputs.map { $0 == tensor ? y : $0 } }
        }
        var before: [Int: Node] = [:]  // target index -> its weight's FakeQuantizeWeight node
        var weightOutputs: [String: String] = [:]
        var weights: [String] = []
        for t in targets {
            let axis = options.perChannel ? t.channelAxis : nil
            let key = "\(t.weight)|\(axis.map(String.init) ?? "tensor")"
            if let y = weightOutputs[key] {
                nodes[t.index].inputs[1] = y
                continue
            }
            let y = names.make(t.weight + "_fake_quantized")
            before[t.index] = Node(name: names.make(t.weight + "_FakeQuantizeWeight"), opType: "FakeQuantizeWeight", domain: Self.domain,
                                   inputs: [t.weight], outputs: [y], attributes: axis.map { [Attribute(name: "axis", value: .int(Int64($0)))] } ?? [])
            g.valueInfo.append(ValueInfo(name: y, type: types.type(of: t.weight)))
            weightOutputs[key] = y
            nodes[t.index].inputs[1] = y
            if !weights.contains(t.weight) { weights.append(t.weight) }
        }
        // Embedding tables quantize would store as int8: per-tensor fake quantization before the lookup.
        for table in try embeddingTables(g, options: options).tables {
            let y = weightOutputs[table.name] ?? {
                let y = names.make(table.name + "_fake_quantized")
                before[table.index] = Node(name: names.make(table.name + "_FakeQuantizeWeight"), opType: "FakeQuantizeWeight",
                                           domain: Self.domain, inputs: [table.name], outputs: [y])
                g.valueInfo.append(ValueInfo(name: y, type: types.type(of: table.name)))
                weightOutputs[table.name] = y
                weights.append(table.name)
                return y
            }()
            nodes[table.index].inputs[0] = y
        }
        self.weights = weights
        var ordered: [Node] = []
        for input in g.inputs { if let n = after[input.name] { ordered.append(n) } }
        for (i, n) in nodes.enumerated() {
            if let w = before[i] { ordered.append(w) }
            ordered.append(n)
            for o in n.outputs { if let f = after[o] { ordered.append(f) } }
        }
        g.nodes = ordered

        self.model = model.replacing(graph: g, opsetImports: model.opsetImports + [OpsetImport(domain: Self.domain, version: 1)])
    }

    /// Turns `trained` (this `model` or a trained copy of it: the same graph, other initializer
    /// values) into the int8 file `quantize` writes in `options.mode`, with its current weights
    /// and, in static mode, its current activation ranges; in place. `validation` (or
    /// `calibration`) measures the report's agreement with the trained float model.
    public func quantize(_ trained: Model, calibration: CalibrationSource? = nil, validation: CalibrationSource? = nil,
                         progress: ProgressHandler? = nil) throws -> QuantizeReport {
        let g = trained.graph
        let constants = Dictionary(g.initializers.map { ($0.name, $0.tensor) }, uniquingKeysWith: { a, _ in a })
        var ranges: [String: (low: Float, high: Float)] = [:]
        var replaced: [String: String] = [:]
        for n in g.nodes where n.domain == Self.domain {
            guard ["FakeQuantize", "FakeQuantizeWeight"].contains(n.opType), n.inputs.count >= 1, n.outputs.count >= 1 else {
                throw KerfError.invalidModel("\(n.label): not a fake quantization node of quantization-aware training")
            }
            replaced[n.outputs[0]] = n.inputs[0]
            guard n.opType == "FakeQuantize", n.inputs.count == 3 else { continue }
            guard let low = constants[n.inputs[1]], let high = constants[n.inputs[2]], low.dtype == .float, high.dtype == .float,
                  low.count == 1, high.count == 1 else {
                throw KerfError.invalidModel("\(n.label): its range is not two float initializers")
            }
            ranges[n.inputs[0]] = (low.withElements(as: Float.self) { $0[0] }, high.withElements(as: Float.self) { $0[0] })
        }
        let float = g.copy()
        float.nodes = g.nodes.filter { $0.domain != Self.domain }.map { n in
            var n = n
            n.inputs = n.inputs.map { replaced[$0] ?? $0 }
            return n
        }
        let produced = Set(replaced.keys)
        float.valueInfo.removeAll { produced.contains($0.name) }
        float.removeUnreadInitializers()
        let model = Model(graph: float, irVersion: trained.irVersion, opsetImports: trained.opsetImports.filter { $0.domain != Self.domain })
        let report = try KerfCompress.quantize(model, options: options, calibration: calibration, validation: validation, progress: progress,
                                               activationRanges: options.mode == .static ? ranges : nil)
        g.nodes = float.nodes
        g.initializers = float.initializers
        g.valueInfo = float.valueInfo
        trained.opsetImports = model.opsetImports
        return report
    }
}
