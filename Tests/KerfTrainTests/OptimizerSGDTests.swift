import KerfCore
import KerfTestSupport
import KerfTrain
import XCTest

final class OptimizerSGDTests: XCTestCase {
    func testPlainSGDIsParameterMinusLearningRateTimesGradient() throws {
        let optimizer = try Optimizer(SGD(lr: 0.5), parameters: ["w": [3]])
        var p: [Float] = [1, 2, -3]
        try optimizer.update("w", &p, [0.5, -0.25, 2])
        XCTAssertEqual(p, [0.75, 2.125, -4])
        let generator = SeededGenerator(seed: 1)
        let q0 = generator.floats(1000), g = generator.floats(1000)
        let other = try Optimizer(SGD(lr: 0.01), parameters: ["w": [1000]])
        var q = q0
        try other.update("w", &q, g)
        XCTAssertEqual(q, zip(q0, g).map { $0.addingProduct($1, Float(-0.01)) })
    }

    func testFirstMomentumStepIsUndampened() throws {
        let optimizer = try Optimizer(SGD(lr: 0.25, momentum: 0.5, dampening: 0.5), parameters: ["w": [2]])
        var p: [Float] = [1, -1]
        try optimizer.update("w", &p, [2, 4])
        XCTAssertEqual(p, [1 - 0.25 * 2, -1 - 0.25 * 4])  // buf = g
        try optimizer.update("w", &p, [4, 8])
        // buf = 0.5 * [2, 4] + (1 - 0.5) * [4, 8] = [3, 6]
        XCTAssertEqual(p, [0.5 - 0.25 * 3, -2 - 0.25 * 6])
        XCTAssertEqual(optimizer.state()["momentum_buffer/w"]?.array(of: Float.self), [3, 6])
    }

    func testNesterovWeightDecayAndMaximize() throws {
        let optimizer = try Optimizer(SGD(lr: 0.5, momentum: 0.5, nesterov: true, weightDecay: 0.25, maximize: true),
                                      parameters: ["w": [2]])
        var p: [Float] = [2, -4]
        try optimizer.update("w", &p, [1, 1])
        // g = -1 + 0.25 p = [-0.5, -2]; buf = g; g + 0.5 buf = [-0.75, -3]
        XCTAssertEqual(p, [2 + 0.375, -4 + 1.5])
    }

    func testNoMomentumKeepsNoBuffer() throws {
        let optimizer = try Optimizer(SGD(lr: 0.1), parameters: ["w": [2]])
        var p: [Float] = [1, 1]
        try optimizer.update("w", &p, [1, 1])
        XCTAssertNil(optimizer.state()["momentum_buffer/w"])
    }

    /// torch 2.13 (torch.optim.SGD, 5 elements: its scalar loop, bit-identical here).
    func testMatchesTorch() throws {
        let cases: [(SGD, [[Float]])] = [
            (SGD(lr: 0.1, momentum: 0.9, dampening: 0.1, weightDecay: 0.01), [
                [0.489499986, -1.22874999, 1.96800005, 0.0400000028, -0.424625009],
                [0.344609439, -1.23101914, 2.11742878, 0.0647139996, -0.46328035],
                [0.24089779, -1.29495347, 2.24550891, 0.185898349, -0.578653216]]),
            (SGD(lr: 0.05, momentum: 0.8, nesterov: true, maximize: true), [
                [0.509000003, -1.26800001, 2.02699995, -0.0360000022, -0.330000013],
                [0.647199988, -1.25189996, 1.85659993, -0.0375500023, -0.31962502],
                [0.670759976, -1.1860199, 1.80477989, -0.142790005, -0.227825016]]),
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
        for options in [SGD(lr: -1), SGD(lr: .nan), SGD(lr: .infinity), SGD(momentum: -0.1), SGD(weightDecay: -1),
                        SGD(nesterov: true), SGD(momentum: 0.9, dampening: 0.1, nesterov: true), SGD(dampening: .nan)] {
            assertInvalidArgument(try Optimizer(options, parameters: ["w": [1]]), "\(options)")
        }
        XCTAssertNoThrow(try SGD(lr: 0, momentum: 0.9, nesterov: true).validate())
    }
}

/// The start and gradients of the embedded torch references.
let torchStart: [Float] = [0.5, -1.25, 2.0, 0.0, -0.375]
let torchGradients: [[Float]] = [[0.1, -0.2, 0.3, -0.4, 0.5], [1.5, 0.25, -2.0, 0.125, -0.0625], [-0.3, 0.7, 0.05, -1.1, 0.9]]
