import KerfCore
import KerfTestSupport
import KerfTrain
import XCTest

final class OptimizerAdamTests: XCTestCase {
    let generator = SeededGenerator(seed: 11)

    /// Steps of `options` from p0 through `gradients` (bit-exact reruns).
    func run(_ options: Adam, _ p0: [Float], _ gradients: [[Float]]) throws -> [Float] {
        let optimizer = try Optimizer(options, parameters: ["w": [p0.count]])
        var p = p0
        for g in gradients { try optimizer.update("w", &p, g) }
        return p
    }

    func testFirstStepMovesEachElementByTheLearningRate() throws {
        // m / (sqrt(v) / sqrt(1 - beta2)) = g * (1 - beta1) / |g| on the first step: a step of lr.
        let p0 = generator.floats(64), g = generator.floats(64, in: 0.5...2)
        let p = try run(Adam(lr: 0.01, eps: 0), p0, [g])
        assertClose(p.indices.map { Double(p0[$0] - p[$0]) }, Array(repeating: 0.01, count: 64), relative: 1e-4)
    }

    func testDecoupledDecayScalesTheParameterBeforeTheAdamStep() throws {
        let lr = 0.01, wd = 0.1
        let p0 = generator.floats(100), g = generator.floats(100)
        let adamW = try run(.adamW(lr: lr, weightDecay: wd), p0, [g])
        let scaled = p0.map { $0 * Float(1 - lr * wd) }
        XCTAssertEqual(adamW, try run(Adam(lr: lr), scaled, [g]))
        // Coupled decay adds wd * p to the gradient instead.
        let adam = try run(Adam(lr: lr, weightDecay: wd), p0, [g])
        XCTAssertEqual(adam, try run(Adam(lr: lr), p0, [zip(g, p0).map { $0.addingProduct($1, Float(wd)) }]))
        XCTAssertNotEqual(adam, adamW)
    }

    func testMaximizeNegatesTheGradient() throws {
        let p0 = generator.floats(40), gs = [generator.floats(40), generator.floats(40)]
        XCTAssertEqual(try run(Adam(lr: 0.1, maximize: true), p0, gs), try run(Adam(lr: 0.1), p0, gs.map { $0.map { -$0 } }))
    }

    func testAMSGradKeepsTheRunningMaximum() throws {
        let optimizer = try Optimizer(Adam(lr: 0.01, amsgrad: true), parameters: ["w": [3]])
        var p: [Float] = [0, 0, 0]
        var largest: [Float] = [0, 0, 0]
        for g: [Float] in [[4, -1, 0.5], [0.1, 3, 0.5], [0.1, 0.1, 0.1]] {
            try optimizer.update("w", &p, g)
            let state = optimizer.state()
            let v = try XCTUnwrap(state["exp_avg_sq/w"]).array(of: Float.self)
            largest = zip(largest, v).map { max($0, $1) }
            XCTAssertEqual(try XCTUnwrap(state["max_exp_avg_sq/w"]).array(of: Float.self), largest)
        }
        XCTAssertEqual(optimizer.state()["step/w"]?.array(of: Int64.self), [3])
    }

    /// torch 2.13 (torch.optim.Adam / AdamW, 5 elements: its scalar loop, whose square root is
    /// correctly rounded as here).
    func testMatchesTorch() throws {
        let cases: [(Adam, [[Float]])] = [
            (Adam(lr: 0.01, weightDecay: 0.1), [
                [0.49000001, -1.24000001, 1.99000001, 0.00999999978, -0.38499999],
                [0.48194772, -1.236444, 1.99537885, 0.0141539667, -0.389957786],
                [0.476824135, -1.24049008, 1.99865425, 0.021266982, -0.397401899]]),
            (.adamW(lr: 0.02, beta1: 0.8, beta2: 0.99, amsgrad: true), [
                [0.479900002, -1.22975004, 1.97960007, 0.0200000014, -0.394925028],
                [0.46333015, -1.23391891, 1.99284637, 0.0273227766, -0.405396461],
                [0.454311103, -1.24785686, 2.00193453, 0.0424082652, -0.421376884]]),
            // 1 - beta1 >= 0.5: torch's lerp takes its other form.
            (Adam(lr: 0.01, beta1: 0.3, maximize: true), [
                [0.50999999, -1.25999999, 2.00999999, -0.00999999978, -0.36500001],
                [0.521068811, -1.25354433, 1.99972832, -0.00987018086, -0.363110512],
                [0.522361219, -1.24129438, 1.99650681, -0.0214942563, -0.351923645]]),
        ]
        for (options, expected) in cases {
            let optimizer = try Optimizer(options, parameters: ["w": [5]])
            var p = torchStart
            for (g, e) in zip(torchGradients, expected) {
                try optimizer.update("w", &p, g)
                assertClose(p, e, relative: 1e-6, "\(options)")
            }
        }
    }

    func testInvalidOptionsThrow() {
        for options in [Adam(lr: -1), Adam(beta1: 1), Adam(beta1: -0.1), Adam(beta2: 1), Adam(beta2: .nan),
                        Adam(eps: -1e-8), Adam(weightDecay: -0.1), .adamW(weightDecay: .infinity)] {
            assertInvalidArgument(try Optimizer(options, parameters: ["w": [1]]), "\(options)")
        }
        XCTAssertNoThrow(try Adam(beta1: 0, beta2: 0, eps: 0).validate())
    }

    func testMomentumOfAnAdamGroupIsBeta1() throws {
        let optimizer = try Optimizer(Adam(beta1: 0.9), parameters: ["w": [1]])
        XCTAssertEqual(optimizer.momenta, [0.9])
        try optimizer.setMomentum(0.5, group: 0)
        XCTAssertEqual(optimizer.momenta, [0.5])
        assertInvalidArgument(try optimizer.setMomentum(1, group: 0))
    }
}
