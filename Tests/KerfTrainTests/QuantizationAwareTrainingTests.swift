import KerfCompress
import KerfCore
import KerfRuntime
import KerfTestSupport
import KerfTrain
import XCTest

/// Quantization-aware training: fake quantization against QuantizeLinear → DequantizeLinear,
/// its straight-through gradient against the closed form, a prepared model against the int8
/// file `quantize` writes from it, and training that keeps zeros, moves ranges and exports.
final class QuantizationAwareTrainingTests: XCTestCase {
    private let domain = "kerf.training"

    private func run(_ model: Model, _ feeds: [String: Tensor]) throws -> [Float] {
        try Session(model: model, options: SessionOptions(threads: 1)).run(feeds)[0].array(of: Float.self)
    }

    func testFakeQuantizeIsQuantizeLinearThenDequantizeLinear() throws {
        let x = Tensor(shape: [4, 50], values: SeededGenerator(seed: 1).floats(200, in: -3...5))
        for (qmin, qmax, dtype) in [(0, 255, DType.uint8), (-128, 127, .int8)] {
            let low: Float = -1.5, high: Float = 3.25  // values beyond it clip
            let fake = Model(graph: Graph(
                nodes: [Node(name: "fq", opType: "FakeQuantize", domain: domain, inputs: ["x", "low", "high"], outputs: ["y"],
                             attributes: [Attribute(name: "qmin", value: .int(Int64(qmin))), Attribute(name: "qmax", value: .int(Int64(qmax)))])],
                inputs: [ValueInfo(name: "x", type: .tensor(dtype: .float, shape: [.value(4), .value(50)]))],
                outputs: [ValueInfo(name: "y", type: nil)],
                initializers: [Initializer(name: "low", tensor: Tensor(scalar: low)), Initializer(name: "high", tensor: Tensor(scalar: high))]),
                opsetImports: [OpsetImport(domain: "", version: 17), OpsetImport(domain: domain, version: 1)])
            let p = AffineQuantization(low: low, high: high, qmin: qmin, qmax: qmax)
            let zero: Tensor = dtype == .uint8 ? Tensor(scalar: UInt8(p.zeroPoint)) : Tensor(scalar: Int8(p.zeroPoint))
            let qdq = Model(graph: Graph(
                nodes: [Node(name: "q", opType: "QuantizeLinear", inputs: ["x", "s", "z"], outputs: ["q"]),
                        Node(name: "dq", opType: "DequantizeLinear", inputs: ["q", "s", "z"], outputs: ["y"])],
                inputs: [ValueInfo(name: "x", type: .tensor(dtype: .float, shape: [.value(4), .value(50)]))],
                outputs: [ValueInfo(name: "y", type: nil)],
                initializers: [Initializer(name: "s", tensor: Tensor(scalar: p.scale)), Initializer(name: "z", tensor: zero)]),
                opsetImports: [OpsetImport(domain: "", version: 17)])
            let a = try run(fake, ["x": x]), b = try run(qdq, ["x": x])
            XCTAssertEqual(a.count, 200)
            XCTAssertEqual(a, b, "\(dtype)")
            XCTAssertEqual(a.max() ?? 0, Float(qmax - p.zeroPoint) * p.scale, accuracy: 1e-6, "clipped at the top of the range")
        }
    }

    func testActivationGradientPassesInsideTheRangeAndWeightGradientPassesUnchanged() throws {
        // y = FakeQuantize(w, low, high) (its range frozen: momentum 1) and
        // v = FakeQuantizeWeight(u); loss = mean((y - t)²) + mean((v - t)²).
        let rng = SeededGenerator(seed: 2)
        let w = Tensor(shape: [3, 8], values: rng.floats(24, in: -2...3)), u = Tensor(shape: [3, 8], values: rng.floats(24, in: -1...1))
        let t = Tensor(shape: [3, 8], values: rng.floats(24, in: -1...1))
        let graph = Graph(
            nodes: [Node(name: "fq", opType: "FakeQuantize", domain: domain, inputs: ["w", "low", "high"], outputs: ["y"],
                         attributes: [Attribute(name: "qmin", value: .int(0)), Attribute(name: "qmax", value: .int(255))]),
                    Node(name: "fqw", opType: "FakeQuantizeWeight", domain: domain, inputs: ["u"], outputs: ["v"],
                         attributes: [Attribute(name: "axis", value: .int(0))])],
            outputs: [ValueInfo(name: "y", type: .tensor(dtype: .float, shape: [.value(3), .value(8)])),
                      ValueInfo(name: "v", type: .tensor(dtype: .float, shape: [.value(3), .value(8)]))],
            valueInfo: [ValueInfo(name: "y", type: .tensor(dtype: .float, shape: [.value(3), .value(8)])),
                        ValueInfo(name: "v", type: .tensor(dtype: .float, shape: [.value(3), .value(8)]))],
            initializers: [Initializer(name: "w", tensor: w), Initializer(name: "u", tensor: u),
                           Initializer(name: "low", tensor: Tensor(scalar: Float(-1))), Initializer(name: "high", tensor: Tensor(scalar: Float(2)))])
        let model = Model(graph: graph, opsetImports: [OpsetImport(domain: "", version: 17), OpsetImport(domain: domain, version: 1)])
        let loss = Loss(terms: [(1, .meanSquaredError(output: "y", target: "t")), (1, .meanSquaredError(output: "v", target: "t"))])
        let trainer = try Trainer(model: model, loss: loss, parameters: ParameterSelection(trainable: ["w", "u"]),
                                  options: TrainerOptions(threads: 1, optimizationLevel: 0,
                                                          trainingMode: TrainingModeOptions(quantizationRangeMomentum: 1)))
        try trainer.backward(["t": t])
        let y = try run(Model(graph: graph.copy(), opsetImports: model.opsetImports), [:])
        let graphV = graph.copy()
        graphV.outputs = [graphV.outputs[1]]
        let v = try run(Model(graph: graphV, opsetImports: model.opsetImports), [:])
        let p = AffineQuantization(low: -1, high: 2, qmin: 0, qmax: 255)
        let ws = w.array(of: Float.self), ts = t.array(of: Float.self)
        let inside = ws.map { x -> Bool in
            let q = (x / p.scale).rounded(.toNearestOrEven) + Float(p.zeroPoint)
            return q >= 0 && q <= 255
        }
        XCTAssertTrue(inside.contains(false) && inside.contains(true), "the data exercise both sides of the clip")
        let expectedW: [Float] = (0..<24).map { inside[$0] ? 2 * (y[$0] - ts[$0]) / 24 : 0 }
        let expectedU: [Float] = (0..<24).map { 2 * (v[$0] - ts[$0]) / 24 }
        let gradients = trainer.gradients()
        assertClose(try XCTUnwrap(gradients["w"]).array(of: Float.self).map(Double.init), expectedW.map(Double.init), absolute: 1e-7,
                    relative: 1e-6, "dL/dw")
        assertClose(try XCTUnwrap(gradients["u"]).array(of: Float.self).map(Double.init), expectedU.map(Double.init), absolute: 1e-7,
                    relative: 1e-6, "dL/du")
        // Per-channel symmetric: each row's largest magnitude is kept exactly.
        for row in 0..<3 {
            let us = u.array(of: Float.self)[row * 8..<row * 8 + 8], vs = v[row * 8..<row * 8 + 8]
            let m = us.map(abs).max()!
            XCTAssertEqual(vs.map(abs).max()!, m, accuracy: 1e-6 * m)
        }
    }

    /// x[batch, 6] → MatMul(w1) + b1 → Relu → MatMul(w2) + b2 → logits; w1 and w2 with some exact zeros.
    private func classifier(seed: UInt64) -> Model {
        let rng = SeededGenerator(seed: seed)
        func weight(_ name: String, _ shape: [Int], scale: Float) -> Initializer {
            let values = rng.floats(shape.reduce(1, *), in: -scale...scale).map { abs($0) < scale * 0.3 ? 0 : $0 }
            return Initializer(name: name, tensor: Tensor(shape: shape, values: values))
        }
        let nodes = [
            Node(name: "fc1", opType: "MatMul", inputs: ["x", "w1"], outputs: ["h"]),
            Node(name: "bias1", opType: "Add", inputs: ["h", "b1"], outputs: ["hb"]),
            Node(name: "relu", opType: "Relu", inputs: ["hb"], outputs: ["a"]),
            Node(name: "fc2", opType: "MatMul", inputs: ["a", "w2"], outputs: ["z"]),
            Node(name: "bias2", opType: "Add", inputs: ["z", "b2"], outputs: ["logits"]),
        ]
        let graph = Graph(nodes: nodes, inputs: [ValueInfo(name: "x", type: .tensor(dtype: .float, shape: [.symbol("N"), .value(6)]))],
                          outputs: [ValueInfo(name: "logits", type: .tensor(dtype: .float, shape: [.symbol("N"), .value(3)]))],
                          initializers: [weight("w1", [6, 16], scale: 1), weight("b1", [16], scale: 0.5),
                                         weight("w2", [16, 3], scale: 1.5), weight("b2", [3], scale: 0.5)])
        return Model(graph: graph, opsetImports: [OpsetImport(domain: "", version: 17)])
    }

    private func inputs(_ count: Int, seed: UInt64) -> Tensor {
        Tensor(shape: [count, 6], values: SeededGenerator(seed: seed).floats(count * 6, in: -2...2))
    }

    private func maxAbsDifference(_ a: [Float], _ b: [Float]) -> Float { zip(a, b).map { abs($0 - $1) }.max() ?? 0 }

    func testPreparedModelComputesWhatTheQuantizedFileComputes() throws {
        let model = classifier(seed: 3)
        let x = inputs(64, seed: 4)
        for mode in [QuantizationMode.static, .dynamic] {
            var options = QuantizeOptions()
            options.mode = mode
            let calibration = try ArrayCalibration(["x": x], graph: model.graph)
            let qat = try QuantizationAwareModel(model, options: options, calibration: calibration)
            XCTAssertEqual(qat.weights, ["w1", "w2"])
            XCTAssertEqual(qat.activations, ["a", "x"], "\(mode): the MatMuls' data inputs")
            let fakeNodes = qat.model.graph.nodes.filter { $0.domain == domain }
            XCTAssertEqual(fakeNodes.map(\.opType).sorted(), ["FakeQuantize", "FakeQuantize", "FakeQuantizeWeight", "FakeQuantizeWeight"])
            let quantized = Model(graph: model.graph.copy(), opsetImports: model.opsetImports)
            _ = try quantize(quantized, options: options, calibration: calibration)
            let float = try run(model, ["x": x]), fake = try run(qat.model, ["x": x]), int8 = try run(quantized, ["x": x])
            XCTAssertEqual(fake.count, 192)
            let quantizationError = maxAbsDifference(float, int8), simulationError = maxAbsDifference(fake, int8)
            XCTAssertGreaterThan(quantizationError, 1e-3, "\(mode): int8 differs from float")
            XCTAssertLessThan(simulationError, quantizationError / 10, "\(mode): the fake-quantized model simulates the int8 file")
            // Nothing trained: the export is the file quantize writes.
            let exported = Model(graph: qat.model.graph.copy(), opsetImports: qat.model.opsetImports)
            _ = try qat.quantize(exported)
            XCTAssertFalse(exported.graph.nodes.contains { $0.domain == domain })
            XCTAssertEqual(exported.graph.nodes.map(\.opType), quantized.graph.nodes.map(\.opType))
            XCTAssertEqual(try run(exported, ["x": x]), int8)
        }
    }

    func testTrainingKeepsZerosMovesRangesAndExportsTheTrainedModel() throws {
        // The student is the teacher with its weights 20% larger (zeros stay zeros).
        let teacher = classifier(seed: 5), student = classifier(seed: 5)
        for i in student.graph.initializers.indices {
            let t = student.graph.initializers[i].tensor
            student.graph.initializers[i].tensor = Tensor(shape: t.shape, values: t.array(of: Float.self).map { $0 * 1.2 })
        }
        let x = inputs(256, seed: 6)
        var options = QuantizeOptions()
        options.mode = .static
        let qat = try QuantizationAwareModel(student, options: options, calibration: try ArrayCalibration(["x": x], graph: student.graph))
        let ranges = qat.model.graph.initializers.filter { $0.name.contains("_qat_") }
        XCTAssertEqual(ranges.count, 4)
        let distiller = try Distiller(student: qat.model, teacher: teacher, options: DistillationOptions(outputLoss: .meanSquaredError),
                                      trainerOptions: TrainerOptions(optimizer: .adam(Adam(lr: 0.01)), threads: 1, keepSparsity: true))
        let before = try evaluate(distiller.trainer, on: .completed(.arrays(["x": x]), distiller.complete), batchSize: 64)
        let report = try distiller.train(data: .arrays(["x": x]), options: TrainingLoopOptions(epochs: 4, batchSize: 32))
        XCTAssertEqual(report.steps, 32)
        XCTAssertEqual(Set(report.parameters), ["w1", "b1", "w2", "b2"], "ranges are state, not parameters")
        let after = try XCTUnwrap(report.epochs.last).loss
        XCTAssertLessThan(after, before.loss, "training lowers the fake-quantized model's loss")
        let trained = distiller.trainer.trainedModel()
        for r in ranges where r.name != "a_qat_low" {  // a = Relu(...) starts at 0
            let value = try XCTUnwrap(trained.graph.initializer(named: r.name)).tensor.array(of: Float.self)[0]
            XCTAssertNotEqual(value, r.tensor.array(of: Float.self)[0], "\(r.name) moved")
        }
        let fake = try run(trained, ["x": x])
        let zeros = { (m: Model, name: String) in m.graph.initializer(named: name)!.tensor.array(of: Float.self).filter { $0 == 0 }.count }
        let zerosBefore = try ["w1", "w2"].map { try XCTUnwrap(teacher.graph.initializer(named: $0)).tensor.array(of: Float.self).filter { $0 == 0 }.count }
        XCTAssertEqual(["w1", "w2"].map { zeros(trained, $0) }, zerosBefore)
        let exported = Model(graph: trained.graph.copy(), opsetImports: trained.opsetImports)
        let quantizeReport = try qat.quantize(exported)
        XCTAssertEqual(quantizeReport.nodes.count, 2)
        XCTAssertEqual(Set(quantizeReport.activations.map(\.name)), ["a", "x"])
        XCTAssertFalse(exported.graph.nodes.contains { $0.domain == domain })
        XCTAssertFalse(exported.opsetImports.contains { $0.domain == domain })
        let int8Weights = exported.graph.initializers.filter { $0.tensor.dtype == .int8 && $0.tensor.rank == 2 }
        XCTAssertEqual(int8Weights.map { $0.tensor.array(of: Int8.self).filter { $0 == 0 }.count }, zerosBefore, "int8 zeros are the pruned ones")
        let int8 = try run(exported, ["x": x])
        let scale = fake.map(abs).max() ?? 1
        XCTAssertLessThan(maxAbsDifference(fake, int8), scale * 0.02, "the int8 file computes what training saw")
    }

    func testBadRequestsAreRefused() throws {
        let model = classifier(seed: 7)
        var options = QuantizeOptions()
        options.mode = .static
        XCTAssertThrowsError(try QuantizationAwareModel(model, options: options, calibration: nil)) { error in
            XCTAssertTrue("\(error)".contains("calibration"), "\(error)")
        }
        options.autoTolerance = 0.01
        let calibration = try ArrayCalibration(["x": inputs(8, seed: 1)], graph: model.graph)
        XCTAssertThrowsError(try QuantizationAwareModel(model, options: options, calibration: calibration))
        options.autoTolerance = nil
        let qat = try QuantizationAwareModel(model, options: options, calibration: calibration)
        XCTAssertThrowsError(try QuantizationAwareModel(qat.model, options: options, calibration: calibration)) { error in
            XCTAssertTrue("\(error)".contains("kerf.training"), "\(error)")
        }
        var momentum = TrainingModeOptions()
        momentum.quantizationRangeMomentum = 1.5
        let trainer = try Trainer(model: qat.model, loss: Loss(.meanSquaredError(output: "logits", target: "t")),
                                  options: TrainerOptions(threads: 1, trainingMode: momentum))
        XCTAssertThrowsError(try trainer.step(["x": inputs(4, seed: 2), "t": Tensor(shape: [4, 3], values: [Float](repeating: 0, count: 12))]))
    }
}
