import KerfCore
import KerfTestSupport
import KerfTrain
import XCTest

extension Optimizer {
    /// `update` over arrays, for tests.
    func update(_ name: String, _ parameter: inout [Float], _ gradient: [Float]) throws {
        try parameter.withUnsafeMutableBufferPointer { p in
            try gradient.withUnsafeBufferPointer { g in try update(name, parameter: p, gradient: g) }
        }
    }
}

/// Asserts that `body` throws `KerfError.invalidArgument`.
func assertInvalidArgument<T>(_ body: @autoclosure () throws -> T, _ message: String = "", file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertThrowsError(try body(), message, file: file, line: line) { error in
        guard case KerfError.invalidArgument = error else {
            return XCTFail("expected invalidArgument, got \(error)", file: file, line: line)
        }
    }
}

/// Construction, parameter groups and the update contract, whatever the rule.
final class OptimizerTests: XCTestCase {
    func testUnknownParameterAndWrongCountsThrowAndChangeNothing() throws {
        let optimizer = try Optimizer(SGD(lr: 0.1, momentum: 0.9), parameters: ["w": [2, 3]])
        var p: [Float] = [1, 2, 3, 4, 5, 6]
        assertInvalidArgument(try optimizer.update("v", &p, [1, 1, 1, 1, 1, 1]))
        XCTAssertThrowsError(try optimizer.update("w", &p, [1, 1, 1])) { error in
            guard case KerfError.shapeMismatch = error else { return XCTFail("\(error)") }
        }
        var short: [Float] = [1, 2]
        XCTAssertThrowsError(try optimizer.update("w", &short, [1, 1]))
        XCTAssertEqual(p, [1, 2, 3, 4, 5, 6])
        XCTAssertEqual(optimizer.state().keys.filter { !$0.hasPrefix("param_groups/") }, [])
    }

    func testInvalidGroupsAndThreadsThrow() {
        let shapes = ["w": [4], "b": [2]]
        assertInvalidArgument(try Optimizer(SGD(), parameters: shapes, groups: [ParameterGroup(names: ["x"])]))
        assertInvalidArgument(try Optimizer(SGD(), parameters: shapes, groups: [ParameterGroup(names: ["b"]), ParameterGroup(names: ["b"])]))
        assertInvalidArgument(try Optimizer(SGD(), parameters: shapes, groups: [ParameterGroup(names: ["b"], learningRate: -1)]))
        assertInvalidArgument(try Optimizer(SGD(), parameters: shapes, groups: [ParameterGroup(names: ["b"], weightDecay: .nan)]))
        assertInvalidArgument(try Optimizer(SGD(), parameters: ["w": [2, -1]]))
        assertInvalidArgument(try Optimizer(SGD(), parameters: shapes, threads: -1))
    }

    func testGroupsTakeTheirOwnLearningRateAndWeightDecay() throws {
        let optimizer = try Optimizer(SGD(lr: 0.5, weightDecay: 0.25), parameters: ["w": [2], "b": [2]],
                                      groups: [ParameterGroup(names: ["b"], learningRate: 0.125, weightDecay: 0)])
        XCTAssertEqual(optimizer.groupCount, 2)
        XCTAssertEqual(optimizer.group(of: "w"), 0)
        XCTAssertEqual(optimizer.group(of: "b"), 1)
        XCTAssertNil(optimizer.group(of: "x"))
        XCTAssertEqual(optimizer.initialLearningRates, [0.5, 0.125])
        XCTAssertEqual(optimizer.weightDecays, [0.25, 0])
        var w: [Float] = [1, -2], b: [Float] = [1, -2]
        try optimizer.update("w", &w, [1, 1])
        try optimizer.update("b", &b, [1, 1])
        // w: g + 0.25 p = [1.25, 0.5]; b: no decay.
        XCTAssertEqual(w, [1 - 0.5 * 1.25, -2 - 0.5 * 0.5])
        XCTAssertEqual(b, [1 - 0.125, -2 - 0.125])
        try optimizer.setLearningRate(1, group: 1)
        try optimizer.update("b", &b, [1, 1])
        XCTAssertEqual(b, [1 - 0.125 - 1, -2 - 0.125 - 1])
        assertInvalidArgument(try optimizer.setLearningRate(1, group: 2))
        assertInvalidArgument(try optimizer.setLearningRate(-0.1, group: 0))
    }

    func testResultsDoNotDependOnTheThreadCount() throws {
        let n = 100_003
        let generator = SeededGenerator(seed: 7)
        let p0 = generator.floats(n), gradients = (0..<3).map { _ in generator.floats(n) }
        for kind in [OptimizerKind.sgd(SGD(lr: 0.1, momentum: 0.9, nesterov: true, weightDecay: 1e-3)),
                     .adam(Adam(lr: 1e-2, weightDecay: 0.1, amsgrad: true)), .adam(.adamW())] {
            var results: [[Float]] = []
            for threads in [1, 2, 3] {
                let optimizer = try Optimizer(kind, parameters: ["w": [n]], threads: threads)
                var p = p0
                for g in gradients { try optimizer.update("w", &p, g) }
                results.append(p)
            }
            XCTAssertEqual(results[0], results[1], "\(kind)")
            XCTAssertEqual(results[0], results[2], "\(kind)")
        }
    }

    func testEmptyParameterIsAccepted() throws {
        let optimizer = try Optimizer(Adam(), parameters: ["e": [0, 3]])
        var p: [Float] = []
        try optimizer.update("e", &p, [])
        XCTAssertEqual(optimizer.state()["step/e"]?.array(of: Int64.self), [1])
    }
}
