import KerfCore
import KerfRuntime
import KerfTestSupport
import KerfTrain
import XCTest

/// Training-mode Dropout: gradient = dY·mask / (1 − ratio), masks a function of the seed.
final class DropoutTrainingTests: XCTestCase {
    private func dropoutModel(opset: Int, ratio: Double, shape: [Int], options: TrainingModeOptions = TrainingModeOptions()) throws
        -> (Model, TrainingRewrites) {
        var inputs = ["x"], initializers: [Initializer] = [], attributes: [Attribute] = []
        if opset >= 12 {
            inputs.append("ratio")
            initializers.append(Initializer(name: "ratio", tensor: Tensor(scalar: Float(ratio))))
        } else {
            attributes.append(Attribute(name: "ratio", value: .float(Float(ratio))))
        }
        let node = Node(name: "drop", opType: "Dropout", inputs: inputs, outputs: ["y"], attributes: attributes)
        let graph = Graph(nodes: [node], inputs: [ValueInfo(name: "x", type: .tensor(dtype: .float, shape: shape.map { .value($0) }))],
                          outputs: [ValueInfo(name: "y", type: nil)], initializers: initializers)
        let rewrites = try rewriteForTraining(graph, opset: opset, options: options)
        return (Model(graph: graph, opsetImports: [OpsetImport(domain: "", version: opset), OpsetImport(domain: "kerf.training", version: 1)]),
                rewrites)
    }

    func testGradientAgainstFiniteDifferences() throws {
        let ratio = Initializer(name: "ratio", tensor: Tensor(scalar: 0.3))
        try checkGradients(GradientCase(op: "Dropout", trained: [("x", [4, 5], -1...1)], inputs: ["x", "ratio"], constants: [ratio], opset: 13,
                                        trainingMode: TrainingModeOptions(seed: 11)))
        try checkGradients(GradientCase(op: "Dropout", attributes: [Attribute(name: "ratio", value: .float(0.6))], trained: [("x", [3, 7], -1...1)],
                                        inputs: ["x"], opset: 10, trainingMode: TrainingModeOptions()))
    }

    func testMaskScalingAndSeeds() throws {
        for opset in [10, 13] {
            let (model, rewrites) = try dropoutModel(opset: opset, ratio: 0.25, shape: [100, 100])
            let seed = try XCTUnwrap(rewrites.dropoutSeed)
            let session = try Session(model: model, options: SessionOptions(threads: 2))
            let x = Tensor(shape: [100, 100], values: (0..<10_000).map { Float($0 % 17) + 1 })
            let first = try session.run(["x": x], outputNames: ["y"])[0].array(of: Float.self)
            let again = try session.run(["x": x], outputNames: ["y"])[0].array(of: Float.self)
            let other = try session.run(["x": x, seed: Tensor(scalar: Int64(42))], outputNames: ["y"])[0].array(of: Float.self)
            XCTAssertEqual(first, again, "same seed, same mask")
            XCTAssertNotEqual(first, other, "another seed, another mask")
            let xs = x.array(of: Float.self)
            var dropped = 0
            for i in xs.indices {
                if first[i] == 0 { dropped += 1 } else { XCTAssertEqual(first[i], xs[i] / 0.75, accuracy: 1e-5) }
            }
            XCTAssertEqual(Double(dropped) / 10_000, 0.25, accuracy: 0.02, "opset \(opset)")
        }
    }

    /// dX = dY·mask·scale exactly, by a Trainer on the rewritten model (loss: mean of y·t).
    func testGradientIsMaskTimesScale() throws {
        let (model, _) = try dropoutModel(opset: 13, ratio: 0.5, shape: [8, 8], options: TrainingModeOptions(seed: 3))
        // x as a trained initializer.
        let g = model.graph
        g.inputs.removeAll { $0.name == "x" }
        let xs = (0..<64).map { Float($0) / 8 - 3 }
        g.initializers.append(Initializer(name: "x", tensor: Tensor(shape: [8, 8], values: xs)))
        let trainer = try Trainer(model: model, loss: Loss(.meanSquaredError(output: "y", target: "t")),
                                  parameters: ParameterSelection(trainable: ["x"]), options: TrainerOptions(threads: 1, optimizationLevel: 0))
        let zeros = Tensor(shape: [8, 8], values: [Float](repeating: 0, count: 64))
        try trainer.backward(["t": zeros])
        let dx = try XCTUnwrap(trainer.gradients()["x"]).array(of: Float.self)
        let session = try Session(model: model, options: SessionOptions(threads: 1))
        let y = try session.run([:], outputNames: ["y"])[0].array(of: Float.self)
        for i in 0..<64 {
            // loss = mean(y²): dL/dy = 2y/64, dL/dx = dL/dy · mask · 2.
            let expected: Float = y[i] == 0 ? 0 : 2 * y[i] / 64 * 2
            XCTAssertEqual(dx[i], expected, accuracy: 1e-6)
        }
    }

    func testRatioZeroAndOne() throws {
        for (ratio, expectKept) in [(0.0, true), (1.0, false)] {
            let (model, _) = try dropoutModel(opset: 13, ratio: ratio, shape: [5, 5])
            let session = try Session(model: model, options: SessionOptions(threads: 1))
            let x = Tensor(shape: [5, 5], values: (1...25).map(Float.init))
            let y = try session.run(["x": x], outputNames: ["y"])[0].array(of: Float.self)
            XCTAssertEqual(y, expectKept ? x.array(of: Float.self) : [Float](repeating: 0, count: 25))
        }
    }

    func testEvalModeLeavesDropoutAlone() throws {
        let (model, rewrites) = try dropoutModel(opset: 13, ratio: 0.5, shape: [4], options: TrainingModeOptions(batchNormalization: true, dropout: false))
        XCTAssertNil(rewrites.dropoutSeed)
        XCTAssertEqual(model.graph.nodes[0].domain, "")
    }
}
