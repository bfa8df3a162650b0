import FoundationEssentials
import KerfTestSupport
import XCTest
@testable import KerfCore
@testable import KerfRuntime

/// ConvTranspose against its scatter definition (oneDNN's path and the GEMM + col2im one), RNN
/// against its step definition, and hostile attributes and inputs that must throw, not trap.
final class ConvTransposeRecurrentTests: XCTestCase {
    private let opsets = [OpsetImport(domain: "", version: 17)]

    private func session(_ op: String, inputs: [String], outputs: [String] = ["y"], _ attributes: [String: AttributeValue],
                         level: Int = 1) throws -> Session {
        let node = Node(name: "n", opType: op, inputs: inputs, outputs: outputs,
                        attributes: attributes.map { Attribute(name: $0.key, value: $0.value) })
        let graph = Graph(nodes: [node], inputs: inputs.filter { !$0.isEmpty }.map { ValueInfo(name: $0, type: nil) },
                          outputs: outputs.filter { !$0.isEmpty }.map { ValueInfo(name: $0, type: nil) })
        return try Session(graph: graph, opsets: opsets, options: SessionOptions(threads: 2, optimizationLevel: level))
    }

    /// A 2-D ConvTranspose as its definition scatters it: every X element times every kernel tap
    /// added at o = i · stride + k · dilation − padBegin, where that lies inside the output.
    private func scattered(_ x: Tensor, _ w: Tensor, group: Int, strides: [Int], dilations: [Int], padsBegin: [Int],
                           output: [Int]) -> [Float] {
        let (n, c, h, wd) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let (mg, kh, kw) = (w.shape[1], w.shape[2], w.shape[3]), m = mg * group, cg = c / group
        let xs = x.array(of: Float.self), ws = w.array(of: Float.self)
        var y = [Float](repeating: 0, count: n * m * output[0] * output[1])
        for b in 0..<n {
            for ci in 0..<c {
                let g = ci / cg
                for i in 0..<h {
                    for j in 0..<wd {
                        let v = xs[((b * c + ci) * h + i) * wd + j]
                        for mo in 0..<mg {
                            for ki in 0..<kh {
                                for kj in 0..<kw {
                                    let oi = i * strides[0] + ki * dilations[0] - padsBegin[0]
                                    let oj = j * strides[1] + kj * dilations[1] - padsBegin[1]
                                    guard oi >= 0, oi < output[0], oj >= 0, oj < output[1] else { continue }
                                    let channel = g * mg + mo
                                    y[((b * m + channel) * output[0] + oi) * output[1] + oj] += v * ws[((ci * mg + mo) * kh + ki) * kw + kj]
                                }
                            }
                        }
                    }
                }
            }
        }
        return y
    }

    func testConvTransposeMatchesTheScatterDefinition() throws {
        let random = SeededGenerator(seed: 7)
        // (X shape, W shape, attributes, group, strides, dilations, padsBegin, output size)
        let cases: [([Int], [Int], [String: AttributeValue], Int, [Int], [Int], [Int], [Int])] = [
            ([2, 4, 5, 6], [4, 3, 3, 3], ["strides": .ints([2, 2]), "pads": .ints([1, 1, 1, 1]), "output_padding": .ints([1, 1])],
             1, [2, 2], [1, 1], [1, 1], [10, 12]),
            ([1, 4, 4, 3], [4, 2, 2, 3], ["group": .int(2), "strides": .ints([3, 1]), "dilations": .ints([2, 2]),
                                          "pads": .ints([0, 2, 1, 0])], 2, [3, 1], [2, 2], [0, 2], [11, 5]),
            // SAME with a stride past the kernel: the output starts before the full one (the
            // GEMM + col2im path, oneDNN takes no negative padding).
            ([1, 2, 3, 3], [2, 2, 1, 1], ["strides": .ints([3, 3]), "auto_pad": .string(Data("SAME_UPPER".utf8))],
             1, [3, 3], [1, 1], [-1, -1], [9, 9]),
            // output_shape past the full output: zeros at the end.
            ([1, 3, 3, 3], [3, 2, 3, 3], ["strides": .ints([3, 2]), "output_shape": .ints([10, 8])], 1, [3, 2], [1, 1], [0, 0], [10, 8]),
        ]
        for (index, (xShape, wShape, attributes, group, strides, dilations, padsBegin, output)) in cases.enumerated() {
            let x = Tensor(shape: xShape, values: random.floats(xShape.reduce(1, *)))
            let w = Tensor(shape: wShape, values: random.floats(wShape.reduce(1, *)))
            let want = scattered(x, w, group: group, strides: strides, dilations: dilations, padsBegin: padsBegin, output: output)
            for level in [0, 1] {
                let y = try session("ConvTranspose", inputs: ["x", "w"], attributes, level: level).run(["x": x, "w": w])[0]
                XCTAssertEqual(y.shape, [xShape[0], wShape[1] * group] + output, "case \(index)")
                assertClose(y.array(of: Float.self), want, absolute: 1e-5, relative: 1e-5, "case \(index), level \(level)")
            }
        }
    }

    func testHostileConvTransposeAttributesAreRefused() {
        let hostile: [[String: AttributeValue]] = [
            ["strides": .ints([.max, .max])],
            ["dilations": .ints([1 << 62, 1 << 62])],
            ["pads": .ints([1 << 62, 0, 1 << 62, 0])],
            ["output_shape": .ints([1 << 40, 1 << 40])],
            ["output_padding": .ints([-1, 0])],
            ["strides": .ints([1 << 40, 1 << 40]), "auto_pad": .string(Data("SAME_LOWER".utf8))],
            ["group": .int(0)],
            ["kernel_shape": .ints([1, 1, 1])],
        ]
        let x = Tensor(shape: [1, 2, 3, 3], values: [Float](repeating: 1, count: 18))
        let w = Tensor(shape: [2, 1, 2, 2], values: [Float](repeating: 1, count: 8))
        for attributes in hostile {
            for level in [0, 1] {
                let node = Node(name: "n", opType: "ConvTranspose", inputs: ["x", "w"], outputs: ["y"],
                                attributes: attributes.map { Attribute(name: $0.key, value: $0.value) })
                let graph = Graph(nodes: [node], inputs: [ValueInfo(name: "x", type: nil), ValueInfo(name: "w", type: nil)],
                                  outputs: [ValueInfo(name: "y", type: nil)])
                let e = refusal(of: graph, feeds: ["x": x, "w": w], options: SessionOptions(threads: 1, optimizationLevel: level))
                XCTAssertNotNil(e, "\(attributes)")
            }
        }
    }

    func testRNNMatchesTheStepDefinition() throws {
        let random = SeededGenerator(seed: 11)
        let (steps, batch, input, hidden) = (3, 2, 2, 3)
        let x = Tensor(shape: [steps, batch, input], values: random.floats(steps * batch * input))
        let w = Tensor(shape: [1, hidden, input], values: random.floats(hidden * input))
        let r = Tensor(shape: [1, hidden, hidden], values: random.floats(hidden * hidden))
        let lengths = Tensor(shape: [batch], values: [Int32(3), 2])
        let outputs = try session("RNN", inputs: ["x", "w", "r", "", "lens"], outputs: ["y", "y_h"], ["hidden_size": .int(Int64(hidden))])
            .run(["x": x, "w": w, "r": r, "lens": lengths])
        let (xs, ws, rs) = (x.array(of: Float.self), w.array(of: Float.self), r.array(of: Float.self))
        var y = [Float](repeating: 0, count: steps * batch * hidden), h = [Float](repeating: 0, count: batch * hidden)
        for t in 0..<steps {
            for b in 0..<batch where t < [3, 2][b] {
                let previous = Array(h[(b * hidden)..<((b + 1) * hidden)])
                for j in 0..<hidden {
                    var sum: Float = 0
                    for k in 0..<input { sum += xs[(t * batch + b) * input + k] * ws[j * input + k] }
                    for k in 0..<hidden { sum += previous[k] * rs[j * hidden + k] }
                    h[b * hidden + j] = tanh(sum)
                    y[(t * batch + b) * hidden + j] = h[b * hidden + j]
                }
            }
        }
        XCTAssertEqual(outputs[0].shape, [steps, 1, batch, hidden])
        assertClose(outputs[0].array(of: Float.self), y, absolute: 1e-5, relative: 1e-5)
        assertClose(outputs[1].array(of: Float.self), h, absolute: 1e-5, relative: 1e-5)
    }

    func testHostileRecurrentInputsAreRefused() {
        let x = Tensor(shape: [2, 1, 2], values: [Float](repeating: 1, count: 4))
        let w = Tensor(shape: [1, 4, 2], values: [Float](repeating: 1, count: 8))
        let r = Tensor(shape: [1, 4, 1], values: [Float](repeating: 1, count: 4))
        let cases: [([String: AttributeValue], [String: Tensor])] = [
            (["hidden_size": .int(1 << 62)], [:]),
            (["hidden_size": .int(1)], ["lens": Tensor(shape: [1], values: [Int64.max])]),
            (["hidden_size": .int(1)], ["lens": Tensor(shape: [1], values: [Float(1)])]),
            (["hidden_size": .int(1), "activations": .strings([Data("Sigmoid".utf8)])], [:]),
            (["hidden_size": .int(1), "activation_alpha": .floats([1]), "activations": .strings([])], [:]),
        ]
        for (attributes, extra) in cases {
            let inputs = ["x", "w", "r", "", extra.isEmpty ? "" : "lens"]
            let node = Node(name: "n", opType: "LSTM", inputs: inputs, outputs: ["y", "y_h"],
                            attributes: attributes.map { Attribute(name: $0.key, value: $0.value) })
            let graph = Graph(nodes: [node], inputs: inputs.filter { !$0.isEmpty }.map { ValueInfo(name: $0, type: nil) },
                              outputs: [ValueInfo(name: "y", type: nil), ValueInfo(name: "y_h", type: nil)])
            let feeds = ["x": x, "w": w, "r": r].merging(extra) { a, _ in a }
            XCTAssertNotNil(refusal(of: graph, feeds: feeds, options: SessionOptions(threads: 1)), "\(attributes)")
        }
    }
}
