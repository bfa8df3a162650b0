import KerfCore
import KerfGraph

/// A model prepared for training: its graph with the trained initializers turned into inputs,
/// the loss appended, and the backward pass after it. Run by one KerfRuntime session whose
/// outputs are the loss and then one gradient per parameter (`gradientNames`, in order).
public struct TrainingGraph {
    public let graph: Graph
    /// The model's opsets and `kerf.training` 1.
    public let opsets: [OpsetImport]
    /// The scalar loss value (the first graph output).
    public let loss: String
    /// The trained initializers, in the model's order.
    public let parameters: [String]
    /// The gradient value of each of `parameters` (a parameter the loss does not reach has none
    /// and is not in the outputs).
    public let gradientNames: [String: String]
    /// Forward (in inference mode: BatchNormalization on running statistics, Dropout passing
    /// through, as PyTorch's `model.eval()`) and loss, with the same inputs: what evaluation runs.
    public let evaluationGraph: Graph
    /// Running statistics (BatchNormalization mean and var initializers) as graph inputs of both
    /// graphs, fed each step from the trainer's state; → the training graph's output holding
    /// each one's update (outputs after the gradients, in `state` order).
    public let state: [String]
    public let stateUpdates: [String: String]
    /// The int64 scalar input that seeds training-mode Dropout masks (feed one per step), if any.
    public let dropoutSeed: String?

    /// `targetTypes`: the dtype and rank of each feed the loss reads (labels, targets), as fed.
    /// `trainingMode` chooses which ops run as in PyTorch's `model.train()`. `fusesExportPatterns`:
    /// the chains torch.onnx.export writes for LayerNorm and GELU become one node each, and those
    /// it writes for Linear layers one Gemm each, before differentiation (fewer kernels forward
    /// and backward, no weight transposes); false differentiates the graph as written.
    public init(model: Model, loss: Loss, parameters selection: ParameterSelection, targetTypes: [String: (dtype: DType, rank: Int)],
                trainingMode: TrainingModeOptions = TrainingModeOptions(), fusesExportPatterns: Bool = true) throws {
        let source = model.graph
        let opset = model.opsetImports.first { $0.domain.isEmpty || $0.domain == "ai.onnx" }?.version ?? 0
        let modelInputs = Set(source.inputs.map(\.name))
        try loss.validate(outputs: Set(source.outputs.map(\.name)), values: source.valueNames, inputs: modelInputs)

        // Forward + loss, the trained initializers as inputs (fed each step).
        let g = source.copy()
        g.outputs = []
        for name in loss.targetNames where !modelInputs.contains(name) {
            let type = targetTypes[name]
            g.inputs.append(ValueInfo(name: name, type: .tensor(dtype: type?.dtype, shape: type.map { [Dim](repeating: .unknown, count: $0.rank) })))
        }
        let modelTypes = g.inferTypes(opset: opset)
        let lossEmitter = NodeEmitter(graph: g, opset: opset, types: modelTypes)
        let soft = Set(loss.terms.compactMap { t -> String? in
            guard case .crossEntropy(_, let labels, _, _) = t.term, let d = targetTypes[labels] else { return nil }
            return d.dtype.isFloatingPoint ? labels : nil
        })
        let lossName = try LossNodes.append(loss, softLabels: soft, emitter: lossEmitter)
        g.nodes += lossEmitter.nodes
        g.initializers += lossEmitter.constants
        g.outputs = [ValueInfo(name: lossName, type: nil)]
        // Selection by node name or op type reads the graph as exported.
        let exported = g.copy()
        if fusesExportPatterns {
            g.fuseDecomposedLayerNorm()
            g.fuseDecomposedGelu()
            g.fuseExportedLinearLayers(opset: opset)
        }
        // Evaluation runs the graph as exported; training in training mode (batch statistics,
        // Dropout masks), the running statistics being state the trainer keeps.
        let evaluation = g.copy()
        let rewrites = try rewriteForTraining(g, opset: opset, options: trainingMode)
        let stateNames = rewrites.runningStatistics.keys.filter { name in g.initializers.contains { $0.name == name } }.sorted()
        let candidates = try selection.resolve(in: exported, loss: lossName, opset: opset).filter { !stateNames.contains($0) }
        let originals = Dictionary(g.initializers.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        Self.makeInputs(candidates + stateNames, of: g, modelInputs: modelInputs)
        Self.makeInputs(candidates + stateNames, of: evaluation, modelInputs: modelInputs)

        // Backward. By default, initializers that get no gradient (Clip bounds) stay constants.
        let types = g.inferTypes(opset: opset)
        let backward = try Differentiation.backward(of: lossName, in: g, withRespectTo: candidates, opset: opset, types: types)
        let trained = selection.trainable == nil ? candidates.filter { backward.gradients[$0] != nil } : candidates
        let constantAgain = Set(candidates).subtracting(trained)
        for graph in [g, evaluation] {
            graph.inputs.removeAll { constantAgain.contains($0.name) && !modelInputs.contains($0.name) }
            graph.initializers += candidates.filter(constantAgain.contains).compactMap { originals[$0] }
        }
        // Evaluation also returns the output of a first cross-entropy term (for accuracy).
        if let output = loss.terms.first?.term.classification?.output { evaluation.outputs.append(ValueInfo(name: output, type: nil)) }
        evaluationGraph = evaluation
        g.nodes += backward.nodes
        g.initializers += backward.constants
        g.outputs += trained.compactMap { p in backward.gradients[p].map { ValueInfo(name: $0, type: nil) } }
        g.outputs += stateNames.compactMap { rewrites.runningStatistics[$0].map { ValueInfo(name: $0, type: nil) } }
        state = stateNames
        stateUpdates = rewrites.runningStatistics.filter { stateNames.contains($0.key) }
        dropoutSeed = rewrites.dropoutSeed

        graph = g
        opsets = model.opsetImports.filter { $0.domain != NodeEmitter.domain } + [OpsetImport(domain: NodeEmitter.domain, version: 1)]
        self.loss = lossName
        parameters = trained
        gradientNames = backward.gradients
    }

    /// Turns the initializers `names` of `g` into graph inputs of the same type (fed each step).
    private static func makeInputs(_ names: [String], of g: Graph, modelInputs: Set<String>) {
        let set = Set(names)
        for initializer in g.initializers where set.contains(initializer.name) && !modelInputs.contains(initializer.name) {
            let dims = initializer.tensor.shape.map { Dim.value($0) }
            g.inputs.append(ValueInfo(name: initializer.name, type: .tensor(dtype: initializer.tensor.dtype, shape: dims)))
        }
        g.initializers.removeAll { set.contains($0.name) }
    }
}
