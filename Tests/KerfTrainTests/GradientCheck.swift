import KerfCore
import KerfRuntime
import KerfTestSupport
import KerfTrain
import XCTest

/// One node under test: its op, attributes, float inputs (trained: each gets a gradient) and
/// constant inputs (initializers that are not trained: shapes, axes, indices, bounds).
struct GradientCase {
    var op: String
    var attributes: [Attribute] = []
    /// (name, shape, range of the random values) of each trained input, in the node's order.
    var trained: [(name: String, shape: [Int], range: ClosedRange<Double>)]
    /// Input names in the node's order (trained names and constant names; "" for an omitted one).
    var inputs: [String]
    var constants: [Initializer] = []
    var outputs: Int = 1
    /// The output the loss reads.
    var lossOutput = 0
    var opset = 17
    /// When set, the graph is rewritten for training mode first (`rewriteForTraining`).
    var trainingMode: TrainingModeOptions?
}

/// Checks the gradients Kerf's backward graph computes for `c` against central finite
/// differences of the loss, in float64 (`dtype` .double) as torch.autograd.gradcheck does
/// (eps 1e-6, atol 1e-5, rtol 1e-3), or in float32 with eps 1e-2 and looser tolerances for
/// operators Kerf runs in float32 only. The loss is MSE of the output against a random
/// target, so every element of the output gets a different gradient.
func checkGradients(_ c: GradientCase, dtype: DType = .double, optimizationLevel: Int = 0, seed: UInt64 = 1,
                    file: StaticString = #filePath, line: UInt = #line) throws {
    let rng = SeededGenerator(seed: seed)
    func tensor(_ shape: [Int], _ range: ClosedRange<Double>) -> Tensor {
        let n = shape.reduce(1, *)
        let values = (0..<n).map { _ in range.lowerBound + (range.upperBound - range.lowerBound) * rng.unit() }
        return dtype == .double ? Tensor(shape: shape, values: values) : Tensor(shape: shape, values: values.map(Float.init))
    }
    let outputs = (0..<c.outputs).map { "y\($0)" }
    let node = Node(name: "under_test", opType: c.op, inputs: c.inputs, outputs: outputs, attributes: c.attributes)
    let initializers = c.trained.map { Initializer(name: $0.name, tensor: tensor($0.shape, $0.range)) } + c.constants
    let graph = Graph(nodes: [node], inputs: [], outputs: outputs.map { ValueInfo(name: $0, type: nil) }, initializers: initializers)
    var opsets = [OpsetImport(domain: "", version: c.opset)]
    if let mode = c.trainingMode, try rewriteForTraining(graph, opset: c.opset, options: mode).usesTrainingDomain {
        opsets.append(OpsetImport(domain: "kerf.training", version: 1))
    }
    let model = Model(graph: graph, opsetImports: opsets)

    // The graph runs as written (the trainer's own training-mode rewrite is off): the finite
    // differences evaluate the same graph the gradients come from.
    let asWritten = TrainerOptions(threads: 1, optimizationLevel: optimizationLevel,
                                   trainingMode: TrainingModeOptions(batchNormalization: false, dropout: false))
    // The output's shape, for the target: one forward run.
    let probe = try Trainer(model: model, loss: Loss(.meanSquaredError(output: outputs[c.lossOutput], target: "t")),
                            parameters: ParameterSelection(trainable: c.trained.map(\.name)),
                            options: asWritten)
    let outputShape = try probe.outputShape(outputs[c.lossOutput])
    let feeds = ["t": tensor(outputShape, -1...1)]
    let trainer = try Trainer(model: model, loss: Loss(.meanSquaredError(output: outputs[c.lossOutput], target: "t")),
                              parameters: ParameterSelection(trainable: c.trained.map(\.name)),
                              options: asWritten)
    try trainer.backward(feeds)
    let analytic = trainer.gradients()
    XCTAssertEqual(Set(analytic.keys), Set(c.trained.map(\.name)), "\(c.op): which inputs got gradients", file: file, line: line)
    let eps = dtype == .double ? 1e-6 : 1e-2
    let (absolute, relative) = dtype == .double ? (1e-5, 1e-3) : (2e-3, 2e-2)
    for input in c.trained {
        guard let g = analytic[input.name] else { continue }
        XCTAssertEqual(g.shape, input.shape, "\(c.op): gradient shape of \(input.name)", file: file, line: line)
        let original = trainer.parameters()[input.name]!
        var numeric: [Double] = []
        for i in 0..<original.count {
            func lossAt(_ delta: Double) throws -> Double {
                try trainer.setParameter(input.name, shifted(original, index: i, by: delta))
                return try trainer.evaluate(feeds)
            }
            numeric.append((try lossAt(eps) - lossAt(-eps)) / (2 * eps))
        }
        try trainer.setParameter(input.name, original)
        let got = g.dtype == .double ? g.array(of: Double.self) : g.array(of: Float.self).map(Double.init)
        assertClose(got, numeric, absolute: absolute, relative: relative, "\(c.op): d loss / d \(input.name)", file: file, line: line)
    }
}

private func shifted(_ t: Tensor, index: Int, by delta: Double) -> Tensor {
    if t.dtype == .double {
        var v = t.array(of: Double.self)
        v[index] += delta
        return Tensor(shape: t.shape, values: v)
    }
    var v = t.array(of: Float.self)
    v[index] += Float(delta)
    return Tensor(shape: t.shape, values: v)
}

extension Trainer {
    /// The shape of model output `name` with the initial parameters (runs the model once).
    func outputShape(_ name: String) throws -> [Int] {
        let model = trainedModel()
        let session = try Session(model: model, options: SessionOptions(threads: 1))
        return try session.run([:], outputNames: [name])[0].shape
    }
}
