import KerfCore
import KerfRuntime
import KerfTestSupport
import KerfTrain
import XCTest

/// BatchNormalization's gradients in inference mode (running statistics) and training mode
/// (batch statistics, after `rewriteForTraining`), and the running statistics training updates.
final class BatchNormalizationGradientTests: XCTestCase {
    private func attr(_ name: String, _ v: Int) -> Attribute { Attribute(name: name, value: .int(Int64(v))) }
    private func attr(_ name: String, _ v: Float) -> Attribute { Attribute(name: name, value: .float(v)) }

    private func statistics(_ c: Int, double: Bool = true) -> [Initializer] {
        let mean = (0..<c).map { 0.1 * Double($0) - 0.2 }, variance = (0..<c).map { 0.5 + 0.25 * Double($0) }
        return double ? [Initializer(name: "mean", tensor: Tensor(shape: [c], values: mean)), Initializer(name: "var", tensor: Tensor(shape: [c], values: variance))]
                      : [Initializer(name: "mean", tensor: Tensor(shape: [c], values: mean.map(Float.init))),
                         Initializer(name: "var", tensor: Tensor(shape: [c], values: variance.map(Float.init)))]
    }

    private func bnCase(_ x: [Int], attributes: [Attribute] = [], opset: Int = 15, training: Bool, outputs: Int = 1,
                        double: Bool = true) -> GradientCase {
        let c = x[1]
        return GradientCase(op: "BatchNormalization", attributes: attributes,
                            trained: [("x", x, -2...2), ("scale", [c], 0.5...1.5), ("b", [c], -1...1)],
                            inputs: ["x", "scale", "b", "mean", "var"], constants: statistics(c, double: double), outputs: outputs, opset: opset,
                            trainingMode: training ? TrainingModeOptions() : nil)
    }

    func testInferenceMode() throws {
        for shape in [[2, 3, 4, 4], [4, 3], [2, 3, 5]] {
            try checkGradients(bnCase(shape, attributes: [attr("epsilon", Float(1e-3))], training: false))
        }
        try checkGradients(bnCase([2, 3, 4, 4], opset: 9, training: false))
        // training_mode options that leave BatchNormalization alone.
        try checkGradients(bnCase([2, 3, 4, 4], training: false) ~ { $0.trainingMode = TrainingModeOptions(batchNormalization: false) })
    }

    func testTrainingMode() throws {
        for shape in [[2, 3, 4, 4], [5, 3], [2, 3, 5]] {
            try checkGradients(bnCase(shape, attributes: [attr("epsilon", Float(1e-3)), attr("momentum", Float(0.8))], training: true))
        }
        try checkGradients(bnCase([2, 3, 4, 4], opset: 9, training: true))
        // Only X trained.
        var onlyX = bnCase([3, 2, 3, 3], training: true)
        onlyX.constants += [Initializer(name: "scale", tensor: Tensor(shape: [2], values: [0.7, 1.3])),
                            Initializer(name: "b", tensor: Tensor(shape: [2], values: [0.1, -0.2]))]
        onlyX.trained = [("x", [3, 2, 3, 3], -2...2)]
        try checkGradients(onlyX)
    }

    /// An ONNX node with training_mode = 1 (opset 14+; Kerf runs it in float): batch statistics
    /// recomputed from X in the gradient.
    func testOnnxTrainingModeNode() throws {
        try checkGradients(bnCase([4, 3, 3, 3], attributes: [attr("training_mode", 1)], training: false, outputs: 3, double: false), dtype: .float)
    }

    /// The rewritten node's outputs against PyTorch's formulas: Y from the batch's mean and
    /// biased variance; running = (1 − m_torch)·running + m_torch·batch with m_torch = 1 − momentum
    /// and the unbiased variance.
    func testRunningStatistics() throws {
        let n = 3, c = 2, h = 2, w = 3, count = n * h * w
        let rng = SeededGenerator(seed: 5)
        let xs = (0..<(n * c * h * w)).map { _ in rng.unit() * 4 - 1 }
        let scale = [0.5, 2.0], bias = [0.25, -1.0], epsilon = 1e-5, momentum = 0.9
        let node = Node(name: "bn", opType: "BatchNormalization", inputs: ["x", "scale", "b", "mean", "var"], outputs: ["y"],
                        attributes: [attr("momentum", Float(momentum))])
        let graph = Graph(nodes: [node], inputs: [ValueInfo(name: "x", type: .tensor(dtype: .double, shape: [.value(n), .value(c), .value(h), .value(w)]))],
                          outputs: [ValueInfo(name: "y", type: nil)],
                          initializers: [Initializer(name: "scale", tensor: Tensor(shape: [c], values: scale)),
                                         Initializer(name: "b", tensor: Tensor(shape: [c], values: bias))] + statistics(c))
        let rewrites = try rewriteForTraining(graph, opset: 15)
        XCTAssertEqual(Set(rewrites.runningStatistics.keys), ["mean", "var"])
        XCTAssertEqual(graph.nodes[0].domain, "kerf.training")
        let model = Model(graph: graph, opsetImports: [OpsetImport(domain: "", version: 15), OpsetImport(domain: "kerf.training", version: 1)])
        let session = try Session(model: model, options: SessionOptions(threads: 2))
        let outputs = try session.run(["x": Tensor(shape: [n, c, h, w], values: xs)],
                                      outputNames: ["y", rewrites.runningStatistics["mean"]!, rewrites.runningStatistics["var"]!])
        let running = statistics(c).map { $0.tensor.array(of: Double.self) }
        var expectedY = [Double](repeating: 0, count: xs.count), expectedMean = [Double](), expectedVar = [Double]()
        for ch in 0..<c {
            let indices = (0..<n).flatMap { i in (0..<(h * w)).map { (i * c + ch) * h * w + $0 } }
            let mean = indices.map { xs[$0] }.reduce(0, +) / Double(count)
            let biased = indices.map { (xs[$0] - mean) * (xs[$0] - mean) }.reduce(0, +) / Double(count)
            for i in indices { expectedY[i] = (xs[i] - mean) / (biased + epsilon).squareRoot() * scale[ch] + bias[ch] }
            let torchMomentum = 1 - momentum
            expectedMean.append((1 - torchMomentum) * running[0][ch] + torchMomentum * mean)
            expectedVar.append((1 - torchMomentum) * running[1][ch] + torchMomentum * biased * Double(count) / Double(count - 1))
        }
        assertClose(outputs[0].array(of: Double.self), expectedY, absolute: 1e-12, relative: 1e-9)
        assertClose(outputs[1].array(of: Double.self), expectedMean, absolute: 1e-12, relative: 1e-6)
        assertClose(outputs[2].array(of: Double.self), expectedVar, absolute: 1e-12, relative: 1e-6)
    }

    func testOneValuePerChannelIsRefused() throws {
        let node = Node(name: "bn", opType: "BatchNormalization", inputs: ["x", "scale", "b", "mean", "var"], outputs: ["y"])
        let graph = Graph(nodes: [node], inputs: [ValueInfo(name: "x", type: .tensor(dtype: .double, shape: [.value(1), .value(2)]))],
                          outputs: [ValueInfo(name: "y", type: nil)],
                          initializers: [Initializer(name: "scale", tensor: Tensor(shape: [2], values: [1.0, 1])),
                                         Initializer(name: "b", tensor: Tensor(shape: [2], values: [0.0, 0]))] + statistics(2))
        _ = try rewriteForTraining(graph, opset: 15)
        let model = Model(graph: graph, opsetImports: [OpsetImport(domain: "", version: 15), OpsetImport(domain: "kerf.training", version: 1)])
        let session = try Session(model: model, options: SessionOptions(threads: 1))
        XCTAssertThrowsError(try session.run(["x": Tensor(shape: [1, 2], values: [1.0, 2])]))
    }
}

infix operator ~: AdditionPrecedence
/// `value` changed by `change` (a modified copy).
func ~ <T>(value: T, change: (inout T) -> Void) -> T {
    var copy = value
    change(&copy)
    return copy
}
