import Foundation
import XCTest
@testable import KerfCore
@testable import KerfRuntime
import KerfTestSupport

/// One session run from several threads at once, intermediate values as outputs, and plans
/// extended with more nodes.
final class ConcurrentSessionTests: XCTestCase {
    private let opsets = [OpsetImport(domain: "", version: 17)]

    private func values(_ n: Int, _ seed: Int) -> [Float] { SeededGenerator(seed: UInt64(seed)).floats(n) }

    private func constant(_ name: String, _ shape: [Int], seed: Int) -> Initializer {
        Initializer(name: name, tensor: Tensor(shape: shape, values: values(shape.reduce(1, *), seed)))
    }

    /// y = softmax(relu(x · W1 + b1) · W2): "m" is the product before the bias, "h" the
    /// activation; packed weights prepared at the first run.
    private func perceptron() -> Graph {
        Graph(nodes: [Node(name: "mm1", opType: "MatMul", inputs: ["x", "W1"], outputs: ["m"]),
                      Node(name: "add", opType: "Add", inputs: ["m", "b1"], outputs: ["a"]),
                      Node(name: "relu", opType: "Relu", inputs: ["a"], outputs: ["h"]),
                      Node(name: "mm2", opType: "MatMul", inputs: ["h", "W2"], outputs: ["z"]),
                      Node(name: "softmax", opType: "Softmax", inputs: ["z"], outputs: ["y"])],
              inputs: [ValueInfo(name: "x", type: .tensor(dtype: .float, shape: [.symbol("N"), .value(48)]))],
              outputs: [ValueInfo(name: "y", type: nil)],
              initializers: [constant("W1", [48, 96], seed: 1), constant("b1", [96], seed: 2), constant("W2", [96, 10], seed: 3)])
    }

    /// Two convolutions (oneDNN primitives made per input shape) and a global pool.
    private func convolutions() -> Graph {
        let pads = Attribute(name: "pads", value: .ints([1, 1, 1, 1]))
        return Graph(nodes: [Node(name: "c1", opType: "Conv", inputs: ["x", "K1", "B1"], outputs: ["c"], attributes: [pads]),
                             Node(name: "r", opType: "Relu", inputs: ["c"], outputs: ["h"]),
                             Node(name: "c2", opType: "Conv", inputs: ["h", "K2"], outputs: ["d"], attributes: [pads]),
                             Node(name: "pool", opType: "GlobalAveragePool", inputs: ["d"], outputs: ["y"])],
                     inputs: [ValueInfo(name: "x", type: .tensor(dtype: .float, shape: [.symbol("N"), .value(3), .value(10), .value(10)]))],
                     outputs: [ValueInfo(name: "y", type: nil)],
                     initializers: [constant("K1", [16, 3, 3, 3], seed: 4), constant("B1", [16], seed: 5), constant("K2", [8, 16, 3, 3], seed: 6)])
    }

    private func input(_ g: Graph, batch: Int, seed: Int) -> Tensor {
        let shape = g.inputs[0].shape!.map { dim -> Int in if case .value(let v) = dim { return v }; return batch }
        return Tensor(shape: shape, values: values(shape.reduce(1, *), seed))
    }

    /// `a` matches `b` within 1e-6.
    private func assertSame(_ a: Tensor, _ b: Tensor, _ message: String, file: StaticString = #filePath, line: UInt = #line) {
        assertClose(a, b, absolute: 1e-6, message, file: file, line: line)
    }

    /// 8 threads run one session on different inputs (and batch sizes) 10^4 times in all; every
    /// result equals the single-threaded run of the same input.
    func testOneSessionRunsFromEightThreads() throws {
        for (name, graph) in [("perceptron", perceptron()), ("convolutions", convolutions())] {
            for threads in [1, 2] {
                let session = try Session(graph: graph, opsets: opsets, options: SessionOptions(threads: threads))
                let inputs = (0..<16).map { input(graph, batch: 1 + $0 % 3, seed: 100 + $0) }
                let expected = try inputs.map { try session.run(["x": $0])[0] }
                let runsPerThread = name == "perceptron" ? 1250 : 150
                let failures = Mutex8()
                DispatchQueue.concurrentPerform(iterations: 8) { t in
                    for r in 0..<runsPerThread {
                        let k = (t * 7 + r) % inputs.count
                        do {
                            let y = try session.run(["x": inputs[k]])[0]
                            if y.shape != expected[k].shape || y.array(of: Float.self) != expected[k].array(of: Float.self) {
                                failures.record("thread \(t) run \(r): input \(k) gave a different result")
                            }
                        } catch {
                            failures.record("thread \(t) run \(r): \(error)")
                        }
                    }
                }
                XCTAssertEqual(failures.messages, [], "\(name), \(threads) intra-op threads")
                for k in inputs.indices { assertSame(try session.run(["x": inputs[k]])[0], expected[k], "\(name) after") }
            }
        }
    }

    /// Any value the plan computes can be returned; values fusion removed need keptValues.
    func testIntermediateValuesAsOutputs() throws {
        let g = perceptron()
        let x = input(g, batch: 2, seed: 7)
        let plain = try Session(graph: g, opsets: opsets, options: SessionOptions(threads: 1, optimizationLevel: 0))
        let reference = try plain.run(["x": x], outputNames: ["m", "h", "y"])
        XCTAssertEqual(reference.map(\.shape), [[2, 96], [2, 96], [2, 10]])
        let optimized = try Session(graph: g, opsets: opsets, options: SessionOptions(threads: 1))
        assertSame(try optimized.run(["x": x], outputNames: ["h"])[0], reference[1], "h survives fusion")
        XCTAssertThrowsError(try optimized.run(["x": x], outputNames: ["m"])) {
            XCTAssertTrue("\($0)".contains("kept values"), "\($0)")
        }
        XCTAssertThrowsError(try optimized.run(["x": x], outputNames: ["nothing"]))
        let keeping = try Session(graph: g, opsets: opsets, options: SessionOptions(threads: 1, keptValues: ["m"]))
        let kept = try keeping.run(["x": x], outputNames: ["y", "m", "h"])
        XCTAssertEqual(kept.count, 3)
        for (i, k) in [(0, 2), (1, 0), (2, 1)] { assertSame(kept[i], reference[k], "kept output \(i)") }
        XCTAssertEqual(keeping.outputs.map(\.name), ["y"], "keptValues add no graph outputs")
        assertSame(try keeping.run(["x": x])[0], reference[2], "default outputs")
        XCTAssertThrowsError(try Session(graph: g, opsets: opsets, options: SessionOptions(keptValues: ["absent"])))
    }

    /// A plan extended with nodes that read its intermediate values and a new input runs both
    /// parts; the original session is unchanged and both can run at once.
    func testExtendedPlanReusesThePreparedOne() throws {
        let g = perceptron()
        let x = input(g, batch: 3, seed: 9)
        let base = try Session(graph: g, opsets: opsets, options: SessionOptions(threads: 1))
        let before = try base.run(["x": x])[0]
        let scale = ValueInfo(name: "s", type: .tensor(dtype: .float, shape: [.value(1)]))
        let added = [Node(name: "scaled", opType: "Mul", inputs: ["h", "s"], outputs: ["hs"]),
                     Node(name: "sum", opType: "ReduceSum", inputs: ["hs"], outputs: ["total"],
                          attributes: [Attribute(name: "keepdims", value: .int(0))])]
        let extended = try base.extended(with: added, inputs: [scale], outputs: [ValueInfo(name: "y", type: nil), ValueInfo(name: "total", type: nil)])
        XCTAssertEqual(extended.plan.count, base.plan.count + 2)
        XCTAssertEqual(Array(extended.plan.prefix(base.plan.count)), base.plan)
        let s = Tensor(shape: [1], values: [Float(0.5)])
        let out = try extended.run(["x": x, "s": s])
        XCTAssertEqual(out.count, 2)
        assertSame(out[0], before, "forward part")
        let h = try base.run(["x": x], outputNames: ["h"])[0].array(of: Float.self)
        XCTAssertEqual(out[1].count, 1)
        XCTAssertEqual(out[1].array(of: Float.self)[0], h.reduce(0, +) * 0.5, accuracy: 1e-3)
        assertSame(try base.run(["x": x])[0], before, "base session unchanged")
        XCTAssertThrowsError(try extended.run(["x": x]), "the new input must be fed")
        XCTAssertThrowsError(try base.extended(with: [Node(name: "bad", opType: "Relu", inputs: ["nowhere"], outputs: ["q"])],
                                               outputs: [ValueInfo(name: "q", type: nil)]))
        XCTAssertThrowsError(try base.extended(with: [Node(name: "dup", opType: "Relu", inputs: ["x"], outputs: ["h"])],
                                               outputs: [ValueInfo(name: "h", type: nil)]))
        // Base and extension share operators: run both from several threads at once.
        let failures = Mutex8()
        DispatchQueue.concurrentPerform(iterations: 8) { t in
            for _ in 0..<200 {
                do {
                    let y = t % 2 == 0 ? try base.run(["x": x])[0] : try extended.run(["x": x, "s": s])[0]
                    if y.array(of: Float.self) != before.array(of: Float.self) { failures.record("thread \(t): different result") }
                } catch {
                    failures.record("thread \(t): \(error)")
                }
            }
        }
        XCTAssertEqual(failures.messages, [])
    }
}

/// Messages recorded from several threads.
private final class Mutex8: @unchecked Sendable {
    private let lock = NSLock()
    private var recorded: [String] = []
    func record(_ message: String) { lock.lock(); if recorded.count < 8 { recorded.append(message) }; lock.unlock() }
    var messages: [String] { lock.lock(); defer { lock.unlock() }; return recorded }
}
