import KerfCore
import KerfTestSupport
import KerfTrain
import XCTest

/// The distillation and cosine loss terms (values against their closed forms, gradients against
/// finite differences in float64), exact sparsity kept through Adam and momentum, and the
/// `Distiller` that trains a pruned student back towards its teacher.
final class DistillationTests: XCTestCase {
    /// A graph y = Identity(w): the loss's gradient with respect to w is its gradient with respect to y.
    private func identityModel(_ w: Tensor) -> Model {
        let graph = Graph(nodes: [Node(name: "id", opType: "Identity", inputs: ["w"], outputs: ["y"])],
                          outputs: [ValueInfo(name: "y", type: .tensor(dtype: w.dtype, shape: w.shape.map { .value($0) }))],
                          initializers: [Initializer(name: "w", tensor: w)])
        return Model(graph: graph)
    }

    /// Checks the loss value against `expected(w, t)` (computed in float64) and its gradient
    /// against central differences. Float32, as the runtime's LogSoftmax: eps 1e-2 and the
    /// float32 tolerances of `checkGradients`.
    private func checkTerm(_ term: (String) -> Loss.Term, shape: [Int], expected: ([Double], [Double]) -> Double,
                           file: StaticString = #filePath, line: UInt = #line) throws {
        let rng = SeededGenerator(seed: 7)
        let count = shape.reduce(1, *)
        let w = Tensor(shape: shape, values: rng.floats(count, in: -2...2)), t = Tensor(shape: shape, values: rng.floats(count, in: -2...2))
        let trainer = try Trainer(model: identityModel(w), loss: Loss(term("t")),
                                  options: TrainerOptions(threads: 1, optimizationLevel: 0))
        let feeds = ["t": t]
        let loss = try trainer.backward(feeds)
        let reference = expected(w.array(of: Float.self).map(Double.init), t.array(of: Float.self).map(Double.init))
        XCTAssertEqual(loss, reference, accuracy: 1e-5 * max(1, abs(reference)), file: file, line: line)
        let analytic = try XCTUnwrap(trainer.gradients()["w"], file: file, line: line)
        XCTAssertEqual(analytic.shape, shape, file: file, line: line)
        var numeric: [Double] = []
        let values = w.array(of: Float.self), eps: Float = 1e-2
        for i in 0..<values.count {
            func at(_ d: Float) throws -> Double {
                var shifted = values
                shifted[i] += d
                try trainer.setParameter("w", Tensor(shape: shape, values: shifted))
                return try trainer.evaluate(feeds)
            }
            numeric.append((try at(eps) - at(-eps)) / (2 * Double(eps)))
        }
        assertClose(analytic.array(of: Float.self).map(Double.init), numeric, absolute: 2e-3, relative: 2e-2, "d loss / d w",
                    file: file, line: line)
    }

    func testDistillationTermIsTSquaredKLOfTemperedSoftmaxes() throws {
        for temperature in [1.0, 2.0, 4.5] {
            try checkTerm({ .distillation(output: "y", teacher: $0, temperature: temperature) }, shape: [3, 5]) { s, t in
                var total = 0.0
                for row in 0..<3 {
                    let sr = s[row * 5..<row * 5 + 5].map { $0 / temperature }, tr = t[row * 5..<row * 5 + 5].map { $0 / temperature }
                    let sNorm = log(sr.map(exp).reduce(0, +)), tNorm = log(tr.map(exp).reduce(0, +))
                    for c in 0..<5 {
                        let logP = tr[c] - tNorm, logQ = sr[c] - sNorm
                        total += exp(logP) * (logP - logQ)
                    }
                }
                return total / 3 * temperature * temperature
            }
        }
    }

    func testDistillationOverPositionsAveragesEverySample() throws {
        // [batch 2, classes 3, positions 4]: KL over axis 1, mean over the 8 (batch, position) pairs.
        try checkTerm({ .distillation(output: "y", teacher: $0, temperature: 2) }, shape: [2, 3, 4]) { s, t in
            var total = 0.0
            for b in 0..<2 {
                for p in 0..<4 {
                    let index = { (c: Int) in (b * 3 + c) * 4 + p }
                    let sr = (0..<3).map { s[index($0)] / 2 }, tr = (0..<3).map { t[index($0)] / 2 }
                    let sNorm = log(sr.map(exp).reduce(0, +)), tNorm = log(tr.map(exp).reduce(0, +))
                    for c in 0..<3 { total += exp(tr[c] - tNorm) * ((tr[c] - tNorm) - (sr[c] - sNorm)) }
                }
            }
            return total / 8 * 4
        }
    }

    func testCosineDistanceIsOneMinusRowCosine() throws {
        try checkTerm({ .cosineDistance(output: "y", target: $0) }, shape: [4, 6]) { s, t in
            var total = 0.0
            for row in 0..<4 {
                let a = s[row * 6..<row * 6 + 6], b = t[row * 6..<row * 6 + 6]
                let dot = zip(a, b).map(*).reduce(0, +)
                let na = a.map { $0 * $0 }.reduce(0, +).squareRoot(), nb = b.map { $0 * $0 }.reduce(0, +).squareRoot()
                total += 1 - dot / (na * nb)
            }
            return total / 4
        }
    }

    func testAttentionDistillationIsKLOverTheLastAxisAveragedOverRows() throws {
        // [batch 2, heads 2, queries 3, keys 4]: KL over the keys, mean over the 12 rows.
        try checkTerm({ .attentionDistillation(output: "y", teacher: $0) }, shape: [2, 2, 3, 4]) { s, t in
            var total = 0.0
            for row in 0..<12 {
                let sr = Array(s[row * 4..<row * 4 + 4]), tr = Array(t[row * 4..<row * 4 + 4])
                let sNorm = log(sr.map(exp).reduce(0, +)), tNorm = log(tr.map(exp).reduce(0, +))
                for k in 0..<4 { total += exp(tr[k] - tNorm) * ((tr[k] - tNorm) - (sr[k] - sNorm)) }
            }
            return total / 12
        }
    }

    func testNonPositiveTemperatureIsRefused() {
        let model = identityModel(Tensor(shape: [2, 3], values: [Float](repeating: 1, count: 6)))
        for temperature in [0.0, -1, .infinity, .nan] {
            XCTAssertThrowsError(try Trainer(model: model, loss: Loss(.distillation(output: "y", teacher: "t", temperature: temperature)))) {
                XCTAssertTrue("\($0)".contains("temperature"), "\($0)")
            }
        }
    }

    /// x[batch, 6] → MatMul(w1 [6, 8]) + b1 → Relu → MatMul(w2 [8, 3]) + b2 → Softmax → probs.
    private func classifier(seed: UInt64) -> Model {
        let rng = SeededGenerator(seed: seed)
        func weight(_ name: String, _ shape: [Int], scale: Float) -> Initializer {
            Initializer(name: name, tensor: Tensor(shape: shape, values: rng.floats(shape.reduce(1, *), in: -scale...scale)))
        }
        let nodes = [
            Node(name: "fc1", opType: "MatMul", inputs: ["x", "w1"], outputs: ["h"]),
            Node(name: "bias1", opType: "Add", inputs: ["h", "b1"], outputs: ["hb"]),
            Node(name: "relu", opType: "Relu", inputs: ["hb"], outputs: ["a"]),
            Node(name: "fc2", opType: "MatMul", inputs: ["a", "w2"], outputs: ["z"]),
            Node(name: "bias2", opType: "Add", inputs: ["z", "b2"], outputs: ["logits"]),
            Node(name: "softmax", opType: "Softmax", inputs: ["logits"], outputs: ["p"], attributes: [Attribute(name: "axis", value: .int(1))]),
            Node(name: "out", opType: "Identity", inputs: ["p"], outputs: ["probs"]),
        ]
        let graph = Graph(nodes: nodes, inputs: [ValueInfo(name: "x", type: .tensor(dtype: .float, shape: [.symbol("N"), .value(6)]))],
                          outputs: [ValueInfo(name: "probs", type: .tensor(dtype: .float, shape: [.symbol("N"), .value(3)]))],
                          initializers: [weight("w1", [6, 8], scale: 1), weight("b1", [8], scale: 0.5),
                                         weight("w2", [8, 3], scale: 1.5), weight("b2", [3], scale: 0.5)])
        return Model(graph: graph, opsetImports: [OpsetImport(domain: "", version: 17)])
    }

    /// `model` with the smallest `fraction` of w1's and w2's magnitudes set to exactly 0.
    private func pruned(_ model: Model, fraction: Double) -> Model {
        let copy = Model(graph: model.graph.copy(), opsetImports: model.opsetImports)
        for i in copy.graph.initializers.indices where copy.graph.initializers[i].tensor.rank == 2 {
            var values = copy.graph.initializers[i].tensor.array(of: Float.self)
            let cut = values.map(abs).sorted()[Int(Double(values.count) * fraction)]
            values = values.map { abs($0) < cut ? 0 : $0 }
            copy.graph.initializers[i].tensor = Tensor(shape: copy.graph.initializers[i].tensor.shape, values: values)
        }
        return copy
    }

    private func inputs(_ count: Int, seed: UInt64) -> Tensor {
        Tensor(shape: [count, 6], values: SeededGenerator(seed: seed).floats(count * 6, in: -2...2))
    }

    func testKeptSparsityStaysExactlyZeroThroughAdamAndMomentum() throws {
        let teacher = classifier(seed: 1), student = pruned(teacher, fraction: 0.6)
        let before = Dictionary(uniqueKeysWithValues: student.graph.initializers.map { ($0.name, $0.tensor.array(of: Float.self)) })
        for optimizer in [OptimizerKind.adam(Adam.adamW(lr: 0.05, weightDecay: 0.1)), .sgd(SGD(lr: 0.2, momentum: 0.9))] {
            let distiller = try Distiller(student: student, teacher: teacher, options: DistillationOptions(),
                                          trainerOptions: TrainerOptions(optimizer: optimizer, threads: 1, keepSparsity: true))
            let report = try distiller.train(data: .arrays(["x": inputs(64, seed: 2)]), options: TrainingLoopOptions(epochs: 3, batchSize: 16))
            XCTAssertEqual(report.steps, 12)
            let trained = Dictionary(uniqueKeysWithValues: distiller.trainer.trainedModel().graph.initializers.map { ($0.name, $0.tensor.array(of: Float.self)) })
            for name in ["w1", "w2"] {
                let old = try XCTUnwrap(before[name]), new = try XCTUnwrap(trained[name])
                XCTAssertEqual(old.count, new.count)
                XCTAssertEqual(zip(old, new).filter { $0.0 == 0 && $0.1 != 0 }.count, 0, "\(name): a pruned element moved")
                XCTAssertGreaterThan(zip(old, new).filter { $0.0 != 0 && $0.0 != $0.1 }.count, old.count / 4, "\(name): kept elements trained")
            }
            XCTAssertEqual(report.sparsity.map(\.name), ["w1", "w2"])
            for s in report.sparsity {
                let old = try XCTUnwrap(before[s.name])
                XCTAssertEqual(s.sparsity, Double(old.filter { $0 == 0 }.count) / Double(old.count), accuracy: 1e-12)
                XCTAssertEqual(s.elements, old.count)
            }
        }
    }

    func testWithoutKeepSparsityPrunedElementsMove() throws {
        let teacher = classifier(seed: 1), student = pruned(teacher, fraction: 0.6)
        let distiller = try Distiller(student: student, teacher: teacher, options: DistillationOptions(),
                                      trainerOptions: TrainerOptions(optimizer: .adam(Adam(lr: 0.05)), threads: 1))
        let report = try distiller.train(data: .arrays(["x": inputs(64, seed: 2)]), options: TrainingLoopOptions(epochs: 2, batchSize: 16))
        XCTAssertEqual(report.sparsity.count, 2)
        for s in report.sparsity { XCTAssertLessThan(s.sparsity, 0.3, "\(s.name)") }
    }

    func testAllZeroWeightsTrainUnderKeepSparsity() throws {
        // A zero-initialized weight is not a pruned one: it must train.
        let model = identityModel(Tensor(shape: [2, 3], values: [Float](repeating: 0, count: 6)))
        let trainer = try Trainer(model: model, loss: Loss(.meanSquaredError(output: "y", target: "t")),
                                  options: TrainerOptions(optimizer: .sgd(SGD(lr: 0.5)), threads: 1, keepSparsity: true))
        try trainer.step(["t": Tensor(shape: [2, 3], values: [Float](repeating: 1, count: 6))])
        XCTAssertTrue(try XCTUnwrap(trainer.parameters()["w"]).array(of: Float.self).allSatisfy { $0 > 0 })
    }

    func testDistilledStudentAgreesWithTheTeacherMoreThanBefore() throws {
        let teacher = classifier(seed: 3), student = pruned(teacher, fraction: 0.5)
        let validation = TrainingData.arrays(["x": inputs(200, seed: 5)])
        let distiller = try Distiller(student: student, teacher: teacher, options: DistillationOptions(temperature: 2),
                                      trainerOptions: TrainerOptions(optimizer: .adam(Adam(lr: 0.03)), threads: 1, keepSparsity: true))
        // The softmax output is distilled on its logits, in both models.
        XCTAssertEqual(distiller.pairs.map(\.student), ["logits"])
        XCTAssertEqual(distiller.pairs.map(\.teacher), ["logits"])
        let before = try evaluate(distiller.trainer, on: .completed(validation, distiller.complete), batchSize: 50)
        let report = try distiller.train(data: .arrays(["x": inputs(512, seed: 4)]), validation: validation,
                                         options: TrainingLoopOptions(epochs: 12, batchSize: 32, restoreBest: false))
        XCTAssertEqual(report.epochs.count, 12)
        let after = try XCTUnwrap(report.epochs.last)
        let agreementBefore = try XCTUnwrap(before.accuracy), agreement = try XCTUnwrap(after.validationAccuracy)
        XCTAssertLessThan(try XCTUnwrap(after.validationLoss), before.loss * 0.5, "validation KL at least halves")
        XCTAssertGreaterThan(agreement, agreementBefore, "top-1 agreement with the teacher grows")
        XCTAssertGreaterThan(agreement, 0.82)  // 0.86 measured; the 50%-pruned student cannot match it all
        XCTAssertLessThanOrEqual(agreement, 1)
    }

    func testTeacherValuesOfArraysAreComputedOncePerSample() throws {
        let teacher = classifier(seed: 3), student = pruned(teacher, fraction: 0.5)
        func run(cacheLimit: Int) throws -> (runs: Int, report: TrainingReport, weights: [String: Tensor]) {
            let d = try Distiller(student: student, teacher: teacher, options: DistillationOptions(),
                                  trainerOptions: TrainerOptions(optimizer: .adam(Adam(lr: 0.01)), threads: 1, keepSparsity: true))
            d.teacherCacheLimit = cacheLimit
            let report = try d.train(data: .arrays(["x": inputs(64, seed: 4)]), validation: .arrays(["x": inputs(32, seed: 5)]),
                                     options: TrainingLoopOptions(epochs: 4, batchSize: 16))
            return (d.teacherRuns, report, d.trainer.parameters())
        }
        let cached = try run(cacheLimit: 1 << 30), perBatch = try run(cacheLimit: 0)
        XCTAssertEqual(cached.runs, 4 + 2, "once over the 64 training and 32 validation samples, in batches of 16")
        XCTAssertEqual(perBatch.runs, 1 + 1 + 4 * 4 + 4 * 2, "a first batch each, then every batch of every epoch")
        XCTAssertEqual(cached.report.steps, perBatch.report.steps)
        XCTAssertEqual(cached.report.epochs.count, 4)
        for (a, b) in zip(cached.report.epochs, perBatch.report.epochs) {
            XCTAssertEqual(a.loss, b.loss, accuracy: 1e-5 * b.loss)
            XCTAssertEqual(try XCTUnwrap(a.validationLoss), try XCTUnwrap(b.validationLoss), accuracy: 1e-5 * b.validationLoss!)
        }
        XCTAssertEqual(Set(cached.weights.keys), Set(perBatch.weights.keys))
        for (name, value) in cached.weights {
            assertClose(value.array(of: Float.self), try XCTUnwrap(perBatch.weights[name]).array(of: Float.self), absolute: 1e-5, relative: 1e-4, name)
        }
    }

    func testLabelsAddCrossEntropyFirstSoAccuracyIsAgainstThem() throws {
        let teacher = classifier(seed: 3), student = pruned(teacher, fraction: 0.5)
        let x = inputs(96, seed: 6)
        let labels = Tensor(shape: [96], values: (0..<96).map { Int64($0 % 3) })
        let distiller = try Distiller(student: student, teacher: teacher, options: DistillationOptions(alpha: 0.25, labels: "y"),
                                      trainerOptions: TrainerOptions(threads: 1))
        XCTAssertEqual(distiller.trainer.loss.terms.count, 2)
        XCTAssertEqual(distiller.trainer.loss.terms[0].weight, 0.75)
        XCTAssertEqual(distiller.trainer.loss.terms[1].weight, 0.25)
        let report = try distiller.train(data: .arrays(["x": x, "y": labels]), validation: .arrays(["x": x, "y": labels]),
                                         options: TrainingLoopOptions(epochs: 1, batchSize: 32))
        // Labels cycling 0, 1, 2 are unrelated to the inputs: the accuracy is against them, about 1/3.
        XCTAssertLessThan(try XCTUnwrap(report.epochs[0].validationAccuracy), 0.6)
    }

    /// x[batch, 6] → MatMul(w1 [6, width]) → Relu → h → MatMul(w2 [width, 3]) → logits → Softmax → probs.
    private func hiddenModel(width: Int, seed: UInt64) -> Model {
        let rng = SeededGenerator(seed: seed)
        let nodes = [
            Node(name: "fc1", opType: "MatMul", inputs: ["x", "w1"], outputs: ["z"]),
            Node(name: "relu", opType: "Relu", inputs: ["z"], outputs: ["h"]),
            Node(name: "fc2", opType: "MatMul", inputs: ["h", "w2"], outputs: ["logits"]),
            Node(name: "softmax", opType: "Softmax", inputs: ["logits"], outputs: ["probs"], attributes: [Attribute(name: "axis", value: .int(-1))]),
        ]
        let graph = Graph(nodes: nodes, inputs: [ValueInfo(name: "x", type: .tensor(dtype: .float, shape: [.symbol("N"), .value(6)]))],
                          outputs: [ValueInfo(name: "probs", type: .tensor(dtype: .float, shape: [.symbol("N"), .value(3)]))],
                          initializers: [Initializer(name: "w1", tensor: Tensor(shape: [6, width], values: rng.floats(6 * width, in: -1...1))),
                                         Initializer(name: "w2", tensor: Tensor(shape: [width, 3], values: rng.floats(width * 3, in: -1...1)))])
        return Model(graph: graph, opsetImports: [OpsetImport(domain: "", version: 17)])
    }

    func testHiddenStatesOfOtherWidthsMatchThroughAProjectionLeftOutOfTheStudent() throws {
        let teacher = hiddenModel(width: 12, seed: 1), student = hiddenModel(width: 8, seed: 2)
        let options = DistillationOptions(matches: [IntermediateMatch(student: "h", teacher: "h", kind: .meanSquaredError, weight: 0.5),
                                                    IntermediateMatch(student: "probs", teacher: "probs", kind: .attention)])
        let distiller = try Distiller(student: student, teacher: teacher, options: options,
                                      trainerOptions: TrainerOptions(optimizer: .adam(Adam(lr: 0.02)), threads: 1))
        XCTAssertEqual(distiller.pairs.map(\.teacher), ["logits", "h", "logits"], "outputs, then the matched values")
        let x = inputs(128, seed: 3)
        let before = try evaluate(distiller.trainer, on: .completed(.arrays(["x": x]), distiller.complete), batchSize: 64)
        let report = try distiller.train(data: .arrays(["x": x]), options: TrainingLoopOptions(epochs: 10, batchSize: 32))
        XCTAssertEqual(Set(report.parameters), ["w1", "w2", "kerf_projection_0"], "the projection trains with the student")
        XCTAssertLessThan(try XCTUnwrap(report.epochs.last).loss, before.loss * 0.7)
        let trained = distiller.trainedStudent()
        XCTAssertEqual(trained.graph.nodes.map(\.name), student.graph.nodes.map(\.name))
        XCTAssertEqual(trained.graph.initializers.map(\.name), ["w1", "w2"])
        XCTAssertNotEqual(trained.graph.initializer(named: "w1")?.tensor.array(of: Float.self), student.graph.initializer(named: "w1")?.tensor.array(of: Float.self))
        // Attention matching needs Softmax outputs over the last axis.
        XCTAssertThrowsError(try Distiller(student: student, teacher: teacher, options: DistillationOptions(
            matches: [IntermediateMatch(student: "h", teacher: "h", kind: .attention)]))) {
            XCTAssertTrue("\($0)".contains("Softmax"), "\($0)")
        }
        XCTAssertThrowsError(try Distiller(student: student, teacher: teacher, options: DistillationOptions(
            matches: [IntermediateMatch(student: "h", teacher: "nope")]))) {
            XCTAssertTrue("\($0)".contains("'nope'"), "\($0)")
        }
    }

    func testMismatchedModelsAndOptionsAreRefused() throws {
        let teacher = classifier(seed: 1)
        let other = classifier(seed: 2)
        other.graph.inputs[0].name = "pixels"
        other.graph.nodes[0].inputs[0] = "pixels"
        XCTAssertThrowsError(try Distiller(student: other, teacher: teacher, options: DistillationOptions())) {
            XCTAssertTrue("\($0)".contains("'x'"), "\($0)")
        }
        let renamed = classifier(seed: 2)
        renamed.graph.outputs[0].name = "scores"
        renamed.graph.nodes[6].outputs[0] = "scores"
        XCTAssertThrowsError(try Distiller(student: renamed, teacher: teacher, options: DistillationOptions())) {
            XCTAssertTrue("\($0)".contains("share no float output"), "\($0)")
        }
        XCTAssertNoThrow(try Distiller(student: renamed, teacher: teacher, options: DistillationOptions(outputs: [("scores", "probs")])))
        XCTAssertThrowsError(try Distiller(student: renamed, teacher: teacher, options: DistillationOptions(outputs: [("nope", "probs")])))
        XCTAssertThrowsError(try Distiller(student: teacher, teacher: teacher, options: DistillationOptions(outputLoss: .meanSquaredError, labels: "y")))
        XCTAssertThrowsError(try Distiller(student: teacher, teacher: teacher, options: DistillationOptions(alpha: 1.5)))
        XCTAssertThrowsError(try Distiller(student: teacher, teacher: teacher, options: DistillationOptions(temperature: 0)))
    }
}

/// Gradual magnitude pruning: Zhu & Gupta's schedule, weights pruned to exactly the final
/// sparsity, biases untouched, and a resumed run equal to an uninterrupted one.
final class GradualPruningTests: XCTestCase {
    func testScheduleIsZhuAndGuptasCubic() {
        let g = GradualPruning(finalSparsity: 0.9, startStep: 0, endStep: 100, frequency: 10)
        XCTAssertEqual(g.sparsity(afterUpdates: 0), 0)
        XCTAssertEqual(g.sparsity(afterUpdates: 10)!, 0.9 - 0.9 * 0.729, accuracy: 1e-12)
        XCTAssertEqual(g.sparsity(afterUpdates: 50)!, 0.9 - 0.9 * 0.125, accuracy: 1e-12)
        XCTAssertEqual(g.sparsity(afterUpdates: 100), 0.9)
        XCTAssertNil(g.sparsity(afterUpdates: 5))
        XCTAssertNil(g.sparsity(afterUpdates: 110))
        let late = GradualPruning(finalSparsity: 0.5, initialSparsity: 0.1, startStep: 20, endStep: 95, frequency: 10)
        XCTAssertNil(late.sparsity(afterUpdates: 10))
        XCTAssertEqual(late.sparsity(afterUpdates: 20)!, 0.1, accuracy: 1e-12)
        XCTAssertEqual(late.sparsity(afterUpdates: 95), 0.5, "the end step prunes though it is off the grid")
        XCTAssertNil(late.sparsity(afterUpdates: 85))
        XCTAssertEqual(GradualPruning(finalSparsity: 0.5, startStep: 0, endStep: 40).sparsity(afterUpdates: 4)!, 0.5 - 0.5 * 0.729, accuracy: 1e-12,
                       "frequency defaults to a tenth of the span")
    }

    private func model() -> Model {
        let rng = SeededGenerator(seed: 11)
        let nodes = [Node(name: "fc1", opType: "MatMul", inputs: ["x", "w1"], outputs: ["h"]),
                     Node(name: "bias1", opType: "Add", inputs: ["h", "b1"], outputs: ["hb"]),
                     Node(name: "relu", opType: "Relu", inputs: ["hb"], outputs: ["a"]),
                     Node(name: "fc2", opType: "Gemm", inputs: ["a", "w2", "b2"], outputs: ["y"], attributes: [Attribute(name: "transB", value: .int(1))])]
        let graph = Graph(nodes: nodes, inputs: [ValueInfo(name: "x", type: .tensor(dtype: .float, shape: [.symbol("N"), .value(6)]))],
                          outputs: [ValueInfo(name: "y", type: .tensor(dtype: .float, shape: [.symbol("N"), .value(3)]))],
                          initializers: [Initializer(name: "w1", tensor: Tensor(shape: [6, 10], values: rng.floats(60))),
                                         Initializer(name: "b1", tensor: Tensor(shape: [10], values: rng.floats(10))),
                                         Initializer(name: "w2", tensor: Tensor(shape: [3, 10], values: rng.floats(30))),
                                         Initializer(name: "b2", tensor: Tensor(shape: [3], values: rng.floats(3)))])
        return Model(graph: graph, opsetImports: [OpsetImport(domain: "", version: 17)])
    }

    private func data() -> TrainingData {
        let rng = SeededGenerator(seed: 12)
        return .arrays(["x": Tensor(shape: [64, 6], values: rng.floats(384)), "t": Tensor(shape: [64, 3], values: rng.floats(192))])
    }

    private func trainer(_ schedule: GradualPruning) throws -> Trainer {
        try Trainer(model: model(), loss: Loss(.meanSquaredError(output: "y", target: "t")),
                    options: TrainerOptions(optimizer: .adam(Adam(lr: 0.01)), threads: 1, gradualPruning: schedule))
    }

    func testWeightsEndAtTheFinalSparsityAndBiasesAreUntouched() throws {
        var zerosSeen: [Int] = []
        let t = try trainer(GradualPruning(finalSparsity: 0.8))  // ends at 3/4 of the 32 updates
        var loop = TrainingLoopOptions(epochs: 4, batchSize: 8)
        loop.progress = { _ in
            zerosSeen.append(t.parameters()["w1"]!.array(of: Float.self).filter { $0 == 0 }.count)
            return true
        }
        let report = try train(t, data: data(), options: loop)
        XCTAssertEqual(report.steps, 32)
        XCTAssertEqual(zerosSeen.count, 32)
        XCTAssertEqual(zerosSeen[23], 48, "80% of w1's 60 elements from update 24 on")
        XCTAssertEqual(Array(zerosSeen[23...]), [Int](repeating: 48, count: 9), "kept until the end")
        XCTAssertEqual(zerosSeen, zerosSeen.sorted(), "sparsity only grows")
        XCTAssertGreaterThan(zerosSeen[1], 0)
        XCTAssertLessThan(zerosSeen[10], 48)
        let final = t.parameters()
        XCTAssertEqual(final["w2"]!.array(of: Float.self).filter { $0 == 0 }.count, 24)
        XCTAssertEqual(final["b1"]!.array(of: Float.self).filter { $0 == 0 }.count, 0)
        XCTAssertEqual(report.sparsity.map(\.name), ["w1", "w2"])
        XCTAssertEqual(report.sparsity.map(\.sparsity), [0.8, 0.8])
    }

    /// Trains with `schedule` for 4 epochs, and for 2 epochs with a checkpoint then resumed to
    /// 4: the two runs must end with the same weights, bit for bit.
    private func assertResumedRunEqualsTheUninterruptedOne(_ schedule: GradualPruning, file: StaticString = #filePath, line: UInt = #line) throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("gradual-\(getpid()).npz").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let whole = try trainer(schedule)
        _ = try train(whole, data: data(), options: TrainingLoopOptions(epochs: 4, batchSize: 8))
        let first = try trainer(schedule)
        _ = try train(first, data: data(), options: TrainingLoopOptions(epochs: 2, batchSize: 8, checkpointPath: path))
        let resumed = try trainer(schedule)
        _ = try train(resumed, data: data(), options: TrainingLoopOptions(epochs: 4, batchSize: 8), resumeFrom: path)
        XCTAssertEqual(whole.parameters().count, 4, file: file, line: line)
        for (name, value) in whole.parameters() {
            XCTAssertEqual(resumed.parameters()[name]?.array(of: Float.self), value.array(of: Float.self), name, file: file, line: line)
        }
    }

    func testResumedRunEqualsTheUninterruptedOne() throws {
        try assertResumedRunEqualsTheUninterruptedOne(GradualPruning(finalSparsity: 0.7, startStep: 2, endStep: 26, frequency: 4))
    }

    func testResumedMovementPruningEqualsTheUninterruptedOne() throws {
        // The movement scores are part of the checkpoint.
        try assertResumedRunEqualsTheUninterruptedOne(GradualPruning(finalSparsity: 0.6, startStep: 2, endStep: 26, frequency: 4,
                                                                     criterion: .movement))
    }

    func testMovementPruningRemovesTheWeightsMovingTowardsZero() throws {
        // y = w (a [4, 4] weight), loss = mean((w − t)²), one SGD update then pruning to 50%:
        // the gradient is 2(w − t)/16 and the movement score −g·w. Targets pull some large
        // weights to zero (low score, pruned) and push some small ones outward (kept).
        let w: [Float] = [2, -2, 0.1, -0.1, 1.5, 0.2, -1.5, 0.3, 3, -3, 0.05, 0.4, -0.2, 1, -1, 0.5]
        let t: [Float] = [0, 0, 2, -2, 0, 1, 0, 1, 3, -3, 1, -1, 0, 1, -1, 0.5]
        let graph = Graph(nodes: [Node(name: "mm", opType: "MatMul", inputs: ["x", "w"], outputs: ["y"])],
                          inputs: [ValueInfo(name: "x", type: .tensor(dtype: .float, shape: [.value(4), .value(4)]))],
                          outputs: [ValueInfo(name: "y", type: .tensor(dtype: .float, shape: [.value(4), .value(4)]))],
                          initializers: [Initializer(name: "w", tensor: Tensor(shape: [4, 4], values: w))])
        let model = Model(graph: graph, opsetImports: [OpsetImport(domain: "", version: 17)])
        var identity = [Float](repeating: 0, count: 16)
        for i in 0..<4 { identity[i * 5] = 1 }
        let feeds = ["x": Tensor(shape: [4, 4], values: identity), "t": Tensor(shape: [4, 4], values: t)]
        var kept: [GradualPruning.Criterion: [Bool]] = [:]
        for criterion in [GradualPruning.Criterion.magnitude, .movement] {
            let trainer = try Trainer(model: model, loss: Loss(.meanSquaredError(output: "y", target: "t")),
                                      options: TrainerOptions(optimizer: .sgd(SGD(lr: 0.1)), threads: 1, optimizationLevel: 0,
                                                              gradualPruning: GradualPruning(finalSparsity: 0.5, startStep: 1, endStep: 1,
                                                                                             criterion: criterion)))
            try trainer.step(feeds)
            let after = try XCTUnwrap(trainer.parameters()["w"]).array(of: Float.self)
            XCTAssertEqual(after.filter { $0 == 0 }.count, 8, "\(criterion)")
            kept[criterion] = after.map { $0 != 0 }
        }
        let scores = zip(w, t).map { w, t in -(2 * (w - t) / 16) * w }
        let expected = scores.enumerated().sorted { $0.element < $1.element || ($0.element == $1.element && $0.offset < $1.offset) }
            .suffix(8).map(\.offset)
        let movementKept = try XCTUnwrap(kept[.movement])
        XCTAssertEqual(movementKept.indices.filter { movementKept[$0] }, expected.sorted())
        XCTAssertNotEqual(kept[.movement], kept[.magnitude], "the two criteria choose differently here")
    }

    func testBadSchedulesAndAnUnknownEndAreRefused() throws {
        for bad in [GradualPruning(finalSparsity: 1), GradualPruning(finalSparsity: 0.5, initialSparsity: 0.6),
                    GradualPruning(finalSparsity: 0.5, startStep: 10, endStep: 5), GradualPruning(finalSparsity: 0.5, frequency: 0)] {
            XCTAssertThrowsError(try trainer(bad))
        }
        let t = try trainer(GradualPruning(finalSparsity: 0.5))
        XCTAssertThrowsError(try t.step(["x": Tensor(shape: [1, 6], values: [Float](repeating: 0, count: 6)),
                                         "t": Tensor(shape: [1, 3], values: [Float](repeating: 0, count: 3))])) {
            XCTAssertTrue("\($0)".contains("end step"), "\($0)")
        }
    }
}
