import KerfCore
import KerfGraph

/// Which ops of a model run in training mode while it trains, as PyTorch's `model.train()`
/// (the default) or `model.eval()` (both off: the graph runs as exported, BatchNormalization on
/// its running statistics, Dropout passing its input through).
public struct TrainingModeOptions: Sendable {
    /// BatchNormalization normalizes with the batch's statistics and updates the running ones.
    public var batchNormalization: Bool
    /// Dropout drops elements at random (scaling the others by 1 / (1 − ratio)).
    public var dropout: Bool
    /// The dropout seed used when none is fed (see `TrainingRewrites.dropoutSeed`).
    public var seed: Int64
    /// Fake-quantized activations (quantization-aware training) move their ranges towards each
    /// batch's min and max: new = m·old + (1 − m)·batch, m this momentum in [0, 1] (PyTorch's
    /// moving-average observer: 0.99). 1 freezes the ranges.
    public var quantizationRangeMomentum: Float

    public init(batchNormalization: Bool = true, dropout: Bool = true, seed: Int64 = 0, quantizationRangeMomentum: Float = 0.99) {
        self.batchNormalization = batchNormalization
        self.dropout = dropout
        self.seed = seed
        self.quantizationRangeMomentum = quantizationRangeMomentum
    }
}

/// What `rewriteForTraining` changed, for whoever runs the graph.
public struct TrainingRewrites: Sendable {
    /// Running-statistic initializer (a BatchNormalization's mean or var) → the value holding
    /// its updated contents after a forward run: copy it back into the initializer after each
    /// training step. Only initializers are listed (a running statistic computed by the graph
    /// or fed is not state to keep). An initializer read by several BatchNormalizations maps to
    /// the last one's update.
    public var runningStatistics: [String: String] = [:]
    /// The int64 scalar graph input all training-mode Dropouts read their step seed from (an
    /// initializer holding `TrainingModeOptions.seed` until fed): feed a different one each
    /// step for fresh masks. Nil when no Dropout was rewritten.
    public var dropoutSeed: String?
    /// The nodes replaced, by name.
    public var replaced: [String] = []
    /// True when the graph now holds `kerf.training` ops (import that domain at version 1).
    public var usesTrainingDomain: Bool { !replaced.isEmpty }
}

/// Rewrites `g` in place for a training-mode forward pass, as `options` selects:
/// - each BatchNormalization becomes `kerf.training.BatchNormalizationTraining(X, scale, B,
///   running_mean, running_var) -> Y, saved_mean, saved_inv_std, new_running_mean,
///   new_running_var` (epsilon and momentum kept; an ONNX training-mode node's running-stat
///   outputs become the last two);
/// - each `kerf.training.FakeQuantize(X, low, high) -> Y` whose range is two initializers
///   gets outputs new_low, new_high and the `momentum` attribute (training form: the range moves
///   towards each batch's); low and high become running statistics like BatchNormalization's;
/// - each Dropout becomes `kerf.training.DropoutTraining(X, ratio, seed) -> Y, mask` (its
///   ratio input or attribute kept, default 0.5; a `training_mode` input is ignored: the option
///   decides), each node with its own stream of the shared seed input.
/// The new values' types are declared in `g.valueInfo` (shape inference does not know the
/// `kerf.training` ops). `opset` is the model's default-domain opset.
public func rewriteForTraining(_ g: Graph, opset: Int, options: TrainingModeOptions = TrainingModeOptions()) throws -> TrainingRewrites {
    var result = TrainingRewrites()
    let fakeQuantizes = g.nodes.contains { $0.domain == NodeEmitter.domain && $0.opType == "FakeQuantize" }
    guard options.batchNormalization || options.dropout || fakeQuantizes else { return result }
    let momentum = options.quantizationRangeMomentum
    guard momentum >= 0 && momentum <= 1 else { throw KerfError.invalidArgument("quantization range momentum \(momentum) is not in [0, 1]") }
    let types = g.inferTypes(opset: opset)
    let names = NameAllocator(g)
    let domain = NodeEmitter.domain
    var declared = Set(g.valueInfo.map(\.name))
    func declare(_ name: String, _ type: ValueType?) {
        guard let type, !declared.contains(name) else { return }
        g.valueInfo.append(ValueInfo(name: name, type: type))
        declared.insert(name)
    }
    func output(_ node: Node, _ i: Int, _ hint: String) -> String {
        i >= 0 && i < node.outputs.count && !node.outputs[i].isEmpty ? node.outputs[i] : names.make("\(node.outputs.first ?? node.name)_\(hint)")
    }
    var dropouts = 0
    for (index, node) in g.nodes.enumerated() {
        if node.domain == domain && node.opType == "FakeQuantize" && node.outputs.count == 1 && node.inputs.count == 3
            && node.inputs[1...].allSatisfy({ g.initializer(named: $0) != nil }) {
            let outputs = [node.outputs[0], names.make(node.inputs[1] + "_updated"), names.make(node.inputs[2] + "_updated")]
            var updated = node
            updated.outputs = outputs
            updated.attributes = node.attributes.filter { $0.name != "momentum" } + [Attribute(name: "momentum", value: .float(momentum))]
            g.nodes[index] = updated
            for (i, o) in zip([1, 2], outputs.dropFirst()) {
                declare(o, .tensor(dtype: .float, shape: g.initializer(named: node.inputs[i])?.tensor.shape.map { Dim.value($0) }))
                result.runningStatistics[node.inputs[i]] = o
            }
            result.replaced.append(node.name)
            continue
        }
        guard node.isDefaultDomain else { continue }
        switch node.opType {
        case "BatchNormalization" where options.batchNormalization:
            guard node.inputs.count == 5, !node.inputs.contains(""), !node.outputs.isEmpty, !node.outputs[0].isEmpty else {
                throw KerfError.invalidModel("\(node.label): BatchNormalization needs X, scale, B, mean and var")
            }
            if opset < 9, let spatial = node.attribute("spatial"), case .int(0) = spatial {
                throw KerfError.unsupported("\(node.label): training BatchNormalization with spatial = 0")
            }
            let outputs = [node.outputs[0], output(node, -1, "saved_mean"), output(node, -1, "saved_inv_std"),
                           output(node, 1, "running_mean"), output(node, 2, "running_var")]
            let attributes = node.attributes.filter { $0.name == "epsilon" || $0.name == "momentum" }
            g.nodes[index] = Node(name: node.name, opType: "BatchNormalizationTraining", domain: domain, inputs: node.inputs,
                                  outputs: outputs, attributes: attributes)
            declare(outputs[0], types.type(of: node.inputs[0]))
            let channel = types.dtype(of: node.inputs[0]).map { ValueType.tensor(dtype: $0, shape: types.shape(of: node.inputs[3])) }
            for o in outputs.dropFirst() { declare(o, channel) }
            for (i, updated) in [(3, outputs[3]), (4, outputs[4])] where g.initializer(named: node.inputs[i]) != nil {
                result.runningStatistics[node.inputs[i]] = updated
            }
            result.replaced.append(node.name)
        case "Dropout" where options.dropout:
            guard !node.inputs.isEmpty, !node.inputs[0].isEmpty, !node.outputs.isEmpty, !node.outputs[0].isEmpty else {
                throw KerfError.invalidModel("\(node.label): Dropout needs an input and an output")
            }
            let seedInput = result.dropoutSeed ?? {
                let name = names.make("kerf_dropout_seed")
                g.inputs.append(ValueInfo(name: name, type: .tensor(dtype: .int64, shape: [])))
                g.initializers.append(Initializer(name: name, tensor: Tensor(scalar: options.seed)))
                result.dropoutSeed = name
                return name
            }()
            var seed: Int64 = 0
            if let v = node.attribute("seed") {
                guard case .int(let s) = v else { throw KerfError.invalidModel("\(node.label): seed is not an int") }
                seed = s
            }
            dropouts += 1
            var attributes = [Attribute(name: "seed", value: .int(seed &+ Int64(dropouts) &* 0x632B_E5AB))]
            if let ratio = node.attribute("ratio") { attributes.append(Attribute(name: "ratio", value: ratio)) }
            let ratioInput = node.inputs.count > 1 ? node.inputs[1] : ""
            let outputs = [node.outputs[0], output(node, 1, "mask")]
            g.nodes[index] = Node(name: node.name, opType: "DropoutTraining", domain: domain, inputs: [node.inputs[0], ratioInput, seedInput],
                                  outputs: outputs, attributes: attributes)
            let x = types.type(of: node.inputs[0])
            declare(outputs[0], x)
            declare(outputs[1], types.shape(of: node.inputs[0]).map { ValueType.tensor(dtype: .bool, shape: $0) })
            result.replaced.append(node.name)
        default:
            continue
        }
    }
    return result
}
