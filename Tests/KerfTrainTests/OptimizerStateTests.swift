import KerfCore
import KerfTestSupport
import KerfTrain
import XCTest

final class OptimizerStateTests: XCTestCase {
    let shapes = ["w": [3, 4], "b": [4]]
    let groups = [ParameterGroup(names: ["b"], learningRate: 0.02, weightDecay: 0)]

    func makeOptimizers() throws -> [Optimizer] {
        [try Optimizer(SGD(lr: 0.1, momentum: 0.9, nesterov: true, weightDecay: 1e-2), parameters: shapes, groups: groups),
         try Optimizer(Adam(lr: 0.01, weightDecay: 0.1, amsgrad: true), parameters: shapes, groups: groups),
         try Optimizer(.adamW(lr: 0.01), parameters: shapes, groups: groups, threads: 2)]
    }

    /// Training steps 0..<count with gradients drawn from `seed` and a cosine schedule.
    func train(_ optimizer: Optimizer, _ scheduler: inout LearningRateScheduler, _ values: inout [String: [Float]], steps: Range<Int>) throws {
        for s in steps {
            try scheduler.apply(to: optimizer)
            let generator = SeededGenerator(seed: UInt64(100 + s))
            for name in ["w", "b"] {
                let gradient = generator.floats(values[name]?.count ?? 0)
                try optimizer.update(name, &values[name, default: []], gradient)
            }
            try scheduler.step()
        }
    }

    func testRestoredOptimizerContinuesBitIdentically() throws {
        let start: [String: [Float]] = ["w": SeededGenerator(seed: 1).floats(12), "b": SeededGenerator(seed: 2).floats(4)]
        for (a, b) in zip(try makeOptimizers(), try makeOptimizers()) {
            var uninterrupted = start, resumed = start
            var s1 = try LearningRateScheduler(.cosineAnnealing(tMax: 5), optimizer: a)
            try train(a, &s1, &uninterrupted, steps: 0..<7)

            let interrupted = try Optimizer(a.kind, parameters: shapes, groups: groups)
            var s2 = try LearningRateScheduler(.cosineAnnealing(tMax: 5), optimizer: interrupted)
            try train(interrupted, &s2, &resumed, steps: 0..<3)
            let optimizerState = interrupted.state(), schedulerState = s2.state()

            var s3 = try LearningRateScheduler(.cosineAnnealing(tMax: 5), optimizer: b)
            try b.restore(optimizerState)
            try s3.restore(schedulerState)
            XCTAssertEqual(s3, s2)
            try train(b, &s3, &resumed, steps: 3..<7)
            XCTAssertEqual(resumed, uninterrupted, "\(a.kind)")
            XCTAssertEqual(b.learningRates, a.learningRates)
        }
    }

    func testExportedStateIsASnapshot() throws {
        let optimizer = try Optimizer(Adam(lr: 0.1), parameters: ["w": [2]])
        var p: [Float] = [1, 2]
        try optimizer.update("w", &p, [1, 1])
        let state = optimizer.state()
        let before = try XCTUnwrap(state["exp_avg/w"]).array(of: Float.self)
        try optimizer.update("w", &p, [3, 3])
        XCTAssertEqual(try XCTUnwrap(state["exp_avg/w"]).array(of: Float.self), before)
        XCTAssertEqual(state["step/w"]?.array(of: Int64.self), [1])
        XCTAssertEqual(state["param_groups/0/lr"]?.array(of: Double.self), [0.1])
        XCTAssertEqual(state["param_groups/0/momentum"]?.array(of: Double.self), [0.9])
        XCTAssertEqual(Set(state.keys), ["step/w", "exp_avg/w", "exp_avg_sq/w", "param_groups/0/lr", "param_groups/0/momentum"])
    }

    func testParameterNamesMayContainSlashes() throws {
        let optimizer = try Optimizer(SGD(lr: 0.1, momentum: 0.5), parameters: ["/layer/w": [1]])
        var p: [Float] = [1]
        try optimizer.update("/layer/w", &p, [1])
        let other = try Optimizer(SGD(lr: 0.1, momentum: 0.5), parameters: ["/layer/w": [1]])
        try other.restore(optimizer.state())
        XCTAssertEqual(other.state()["momentum_buffer//layer/w"]?.array(of: Float.self), [1])
    }

    func testInvalidStateThrowsAndChangesNothing() throws {
        let optimizer = try Optimizer(Adam(lr: 0.1), parameters: ["w": [2]])
        var p: [Float] = [1, 2]
        try optimizer.update("w", &p, [1, 1])
        let good = optimizer.state()
        func variant(_ edit: (inout [String: Tensor]) -> Void) -> [String: Tensor] {
            var s = good
            edit(&s)
            return s
        }
        let bad: [[String: Tensor]] = [
            variant { $0["exp_avg/x"] = Tensor(shape: [2], values: [Float(0), 0]) },
            variant { $0["nonsense"] = Tensor(scalar: Float(0)) },
            variant { $0["exp_avg/w"] = Tensor(shape: [3], values: [Float(0), 0, 0]) },
            variant { $0["exp_avg/w"] = Tensor(shape: [2], values: [Double(0), 0]) },
            variant { $0["exp_avg_sq/w"] = nil },
            variant { $0["step/w"] = nil },
            variant { $0["step/w"] = Tensor(scalar: Int64(-1)) },
            variant { $0["step/w"] = Tensor(scalar: Float(1)) },
            variant { $0["max_exp_avg_sq/w"] = Tensor(shape: [2], values: [Float(0), 0]) },  // not amsgrad
            variant { $0["momentum_buffer/w"] = Tensor(shape: [2], values: [Float(0), 0]) },  // not SGD
            variant { $0["param_groups/0/lr"] = nil },
            variant { $0["param_groups/1/lr"] = Tensor(scalar: 0.1) },
            variant { $0["param_groups/0/lr"] = Tensor(scalar: -0.1) },
            variant { $0["param_groups/0/momentum"] = Tensor(scalar: 1.0) },  // beta1 must be < 1
        ]
        for (i, state) in bad.enumerated() {
            assertInvalidArgument(try optimizer.restore(state), "variant \(i)")
        }
        let after = optimizer.state()
        XCTAssertEqual(Set(after.keys), Set(good.keys))
        XCTAssertEqual(after["exp_avg/w"]?.array(of: Float.self), good["exp_avg/w"]?.array(of: Float.self))
        // Restoring group values only resets every parameter's state.
        try optimizer.restore(good.filter { $0.key.hasPrefix("param_groups/") })
        XCTAssertNil(optimizer.state()["exp_avg/w"])
    }
}
