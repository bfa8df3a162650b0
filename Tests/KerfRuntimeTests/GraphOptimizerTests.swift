import XCTest
@testable import KerfCore
@testable import KerfKernels
@testable import KerfRuntime
import KerfTestSupport

final class GraphOptimizerTests: XCTestCase {
    private let opsets = [OpsetImport(domain: "", version: 17)]

    private func values(_ n: Int, _ seed: Float) -> [Float] { (0..<n).map { Float(($0 * 7 + Int(seed * 13)) % 11) / 11 - 0.4 } }

    private func tensorInput(_ name: String, _ dims: [Int]) -> ValueInfo {
        ValueInfo(name: name, type: .tensor(dtype: .float, shape: dims.map { .value($0) }))
    }

    /// x -> Conv(W, b) -> BatchNormalization -> Relu -> y
    private func convBnRelu() -> Graph {
        let c = 3, m = 4
        let inits = [
            Initializer(name: "W", tensor: Tensor(shape: [m, c, 3, 3], values: values(m * c * 9, 1))),
            Initializer(name: "b", tensor: Tensor(shape: [m], values: values(m, 2))),
            Initializer(name: "gamma", tensor: Tensor(shape: [m], values: [Float]([1.5, 0.5, 2, 1]))),
            Initializer(name: "beta", tensor: Tensor(shape: [m], values: values(m, 3))),
            Initializer(name: "mean", tensor: Tensor(shape: [m], values: values(m, 4))),
            Initializer(name: "var", tensor: Tensor(shape: [m], values: [Float]([0.5, 1, 2, 0.25]))),
        ]
        var conv = Node(name: "conv", opType: "Conv", inputs: ["x", "W", "b"], outputs: ["c"])
        conv.attributes = [Attribute(name: "pads", value: .ints([1, 1, 1, 1]))]
        let bn = Node(name: "bn", opType: "BatchNormalization", inputs: ["c", "gamma", "beta", "mean", "var"], outputs: ["n"])
        let relu = Node(name: "relu", opType: "Relu", inputs: ["n"], outputs: ["y"])
        return Graph(nodes: [conv, bn, relu], inputs: [tensorInput("x", [2, c, 5, 5])], outputs: [ValueInfo(name: "y", type: nil)],
                     initializers: inits)
    }

    /// The optimized graph's nodes as they are before the channels-last rewrite: its Transposes
    /// dropped, its NhwcConv and NhwcBatchNormalization named as in ONNX (ChannelsLastTests
    /// covers the rewrite).
    private func withoutLayout(_ g: Graph) -> [Node] {
        g.nodes.filter { !($0.opType == "Transpose" && ($0.name.hasSuffix("/to_nhwc") || $0.name.hasSuffix("/to_nchw"))) }.map { n in
            var n = n
            if n.opType == ChannelsLast.conv { n.opType = "Conv" }
            if n.opType == ChannelsLast.batchNormalization { n.opType = "BatchNormalization" }
            return n
        }
    }

    private func run(_ g: Graph, level: Int, _ feeds: [String: Tensor]) throws -> [Float] {
        try Session(graph: g, opsets: opsets, options: SessionOptions(threads: 1, optimizationLevel: level)).run(feeds)[0].array(of: Float.self)
    }

    func testConvBatchNormReluBecomesOneFusedConv() throws {
        let g = convBnRelu()
        let optimized = try GraphOptimizer.optimize(g, opsets: opsets, options: SessionOptions())
        XCTAssertEqual(withoutLayout(optimized).map(\.opType), ["Conv"])
        XCTAssertNotNil(withoutLayout(optimized)[0].attribute(FusedAttributes.activation))
        XCTAssertEqual(g.nodes.count, 3, "the source graph is not modified")
        let x = Tensor(shape: [2, 3, 5, 5], values: values(150, 5))
        let plain = try run(g, level: 0, ["x": x]), fused = try run(g, level: 1, ["x": x])
        assertClose(fused, plain, absolute: 1e-5)
    }

    /// x -> Conv -> Add(skip) -> Relu -> y, the skip fed (same shape as the Conv output, or
    /// broadcasting from [4, 1, 1]) or a Conv of its own; `op` is Add or Sum.
    private func residualBlock(_ op: String, skip: [Int]) -> Graph {
        let inits = [Initializer(name: "W", tensor: Tensor(shape: [4, 3, 3, 3], values: values(108, 1))),
                     Initializer(name: "b", tensor: Tensor(shape: [4], values: values(4, 2)))]
        var conv = Node(name: "conv", opType: "Conv", inputs: ["x", "W", "b"], outputs: ["c"])
        conv.attributes = [Attribute(name: "pads", value: .ints([1, 1, 1, 1]))]
        let add = Node(name: "add", opType: op, inputs: ["skip", "c"], outputs: ["s"])
        let relu = Node(name: "relu", opType: "Relu", inputs: ["s"], outputs: ["y"])
        return Graph(nodes: [conv, add, relu], inputs: [tensorInput("x", [2, 3, 5, 5]), tensorInput("skip", skip)],
                     outputs: [ValueInfo(name: "y", type: nil)], initializers: inits)
    }

    func testConvAddReluFusesTheResidualIntoTheConv() throws {
        for op in ["Add", "Sum"] {
            for skip in [[2, 4, 5, 5], [4, 1, 1]] {
                let g = residualBlock(op, skip: skip)
                let optimized = try GraphOptimizer.optimize(g, opsets: opsets, options: SessionOptions())
                XCTAssertEqual(optimized.nodes.map(\.opType), ["Conv"], "\(op) \(skip)")
                XCTAssertNotNil(optimized.nodes[0].attribute(FusedAttributes.residual))
                XCTAssertNotNil(optimized.nodes[0].attribute(FusedAttributes.activation))
                let feeds = ["x": Tensor(shape: [2, 3, 5, 5], values: values(150, 5)),
                             "skip": Tensor(shape: skip, values: values(skip.reduce(1, *), 6).map { $0 * 3 })]
                let plain = try run(g, level: 0, feeds), fused = try run(g, level: 1, feeds)
                XCTAssertEqual(plain.count, 200)
                XCTAssertTrue(plain.contains(0) && plain.contains { $0 > 0 }, "the Relu clips some outputs")
                assertClose(fused, plain, absolute: 1e-5)
            }
        }
    }

    /// x (8-bit) -> DequantizeLinear -> [Relu] -> QuantizeLinear with other parameters and maybe
    /// another 8-bit type: one table lookup, byte for byte what the three operators give.
    func testDequantizeReluQuantizeBecomesALookupWithIdenticalBytes() throws {
        for (xType, yType, relu) in [(DType.uint8, DType.uint8, true), (.int8, .int8, true), (.int8, .uint8, false), (.uint8, .int8, true)] {
            func zero(_ t: DType, _ v: Int) -> Tensor {
                t == .uint8 ? Tensor(shape: [], values: [UInt8(v)]) : Tensor(shape: [], values: [Int8(v - 128)])
            }
            let inits = [Initializer(name: "xs", tensor: Tensor(scalar: Float(0.043))), Initializer(name: "xz", tensor: zero(xType, 131)),
                         Initializer(name: "ys", tensor: Tensor(scalar: Float(0.0215))), Initializer(name: "yz", tensor: zero(yType, 9))]
            var nodes = [Node(name: "dq", opType: "DequantizeLinear", inputs: ["x", "xs", "xz"], outputs: ["f"])]
            if relu { nodes.append(Node(name: "relu", opType: "Relu", inputs: ["f"], outputs: ["r"])) }
            nodes.append(Node(name: "q", opType: "QuantizeLinear", inputs: [relu ? "r" : "f", "ys", "yz"], outputs: ["y"]))
            let g = Graph(nodes: nodes, inputs: [ValueInfo(name: "x", type: .tensor(dtype: xType, shape: [.value(2), .value(256)]))],
                          outputs: [ValueInfo(name: "y", type: nil)], initializers: inits)
            let optimized = try GraphOptimizer.optimize(g, opsets: opsets, options: SessionOptions())
            XCTAssertEqual(optimized.nodes.map(\.opType), ["QuantizedTable"], "\(xType) -> \(yType)")
            // Every byte value, forwards and backwards.
            let bytes = (0..<512).map { UInt8($0 < 256 ? $0 : 511 - $0) }
            let x = xType == .uint8 ? Tensor(shape: [2, 256], values: bytes) : Tensor(shape: [2, 256], values: bytes.map { Int8(bitPattern: $0) })
            func output(_ level: Int) throws -> [UInt8] {
                let y = try Session(graph: g, opsets: opsets, options: SessionOptions(threads: 1, optimizationLevel: level)).run(["x": x])[0]
                XCTAssertEqual(y.dtype, yType)
                return Array(UnsafeBufferPointer(start: y.storage.pointer.assumingMemoryBound(to: UInt8.self), count: y.count))
            }
            let plain = try output(0), fused = try output(1)
            XCTAssertEqual(plain, fused, "\(xType) -> \(yType) relu \(relu)")
            XCTAssertGreaterThan(Set(plain).count, 100, "the table is not degenerate")
        }
    }

    /// DequantizeLinear -> float ops with constant scalars or channel vectors -> QuantizeLinear
    /// (ONNX Runtime's static files of transformers): tables, byte for byte what the ops give —
    /// a GELU-like scalar chain (composed with the table after it), a bias Add (also run as
    /// arithmetic) and a division by a vector (a table per channel).
    func testFloatChainsBetweenDequantizeAndQuantizeBecomeIdenticalTables() throws {
        let channels = 24
        let vector = (0..<channels).map { Float($0) * 0.37 - 4 }
        let inits = [Initializer(name: "xs", tensor: Tensor(scalar: Float(0.043))), Initializer(name: "xz", tensor: Tensor(scalar: UInt8(131))),
                     Initializer(name: "ys", tensor: Tensor(scalar: Float(0.0215))), Initializer(name: "yz", tensor: Tensor(scalar: UInt8(9))),
                     Initializer(name: "root2", tensor: Tensor(scalar: Float(2).squareRoot())), Initializer(name: "one", tensor: Tensor(scalar: Float(1))),
                     Initializer(name: "v", tensor: Tensor(shape: [channels], values: vector)),
                     Initializer(name: "w", tensor: Tensor(shape: [channels], values: vector.map { $0 == 0 ? 1 : $0 }))]
        let nodes = [
            Node(name: "dq", opType: "DequantizeLinear", inputs: ["x", "xs", "xz"], outputs: ["f"]),
            Node(name: "div", opType: "Div", inputs: ["f", "root2"], outputs: ["d"]),
            Node(name: "erf", opType: "Erf", inputs: ["d"], outputs: ["e"]),
            Node(name: "add1", opType: "Add", inputs: ["e", "one"], outputs: ["a"]),
            Node(name: "q1", opType: "QuantizeLinear", inputs: ["a", "ys", "yz"], outputs: ["y1q"]),
            Node(name: "dq1", opType: "DequantizeLinear", inputs: ["y1q", "ys", "yz"], outputs: ["y1f"]),
            Node(name: "relu", opType: "Relu", inputs: ["y1f"], outputs: ["y1r"]),
            Node(name: "q1b", opType: "QuantizeLinear", inputs: ["y1r", "xs", "yz"], outputs: ["y1"]),
            Node(name: "bias", opType: "Add", inputs: ["v", "f"], outputs: ["b"]),
            Node(name: "q2", opType: "QuantizeLinear", inputs: ["b", "ys", "yz"], outputs: ["y2"]),
            Node(name: "scale", opType: "Div", inputs: ["f", "w"], outputs: ["s"]),
            Node(name: "q3", opType: "QuantizeLinear", inputs: ["s", "ys", "yz"], outputs: ["y3"]),
        ]
        let g = Graph(nodes: nodes, inputs: [ValueInfo(name: "x", type: .tensor(dtype: .uint8, shape: [.value(256), .value(channels)]))],
                      outputs: ["y1", "y2", "y3"].map { ValueInfo(name: $0, type: nil) }, initializers: inits)
        let optimized = try GraphOptimizer.optimize(g, opsets: opsets, options: SessionOptions())
        XCTAssertEqual(optimized.nodes.map(\.opType).sorted(), ["QuantizedChannelTable", "QuantizedChannelTable", "QuantizedTable"])
        // Every byte value in every channel.
        let x = Tensor(shape: [256, channels], values: (0..<(256 * channels)).map { UInt8(($0 / channels + $0 % channels * 7) % 256) })
        func outputs(_ level: Int) throws -> [[UInt8]] {
            try Session(graph: g, opsets: opsets, options: SessionOptions(threads: 1, optimizationLevel: level)).run(["x": x]).map { $0.array(of: UInt8.self) }
        }
        let plain = try outputs(0), fused = try outputs(1)
        for i in 0..<3 {
            XCTAssertEqual(plain[i], fused[i], "output \(i)")
            XCTAssertGreaterThan(Set(plain[i]).count, 20, "output \(i) is not degenerate")
        }
    }

    /// A bias of shape [1, C] (as scikit-learn exports it) makes a channel table too; an X of
    /// lower rank gets the leading 1 broadcasting gives it.
    func testChannelTablesTakeBiasesWithLeadingOnes() throws {
        let channels = 10
        let inits = [Initializer(name: "xs", tensor: Tensor(scalar: Float(0.05))), Initializer(name: "xz", tensor: Tensor(scalar: UInt8(120))),
                     Initializer(name: "ys", tensor: Tensor(scalar: Float(0.07))), Initializer(name: "yz", tensor: Tensor(scalar: UInt8(100))),
                     Initializer(name: "bias", tensor: Tensor(shape: [1, channels], values: (0..<channels).map { Float($0) * 0.9 - 4 }))]
        let nodes = [Node(name: "dq", opType: "DequantizeLinear", inputs: ["x", "xs", "xz"], outputs: ["f"]),
                     Node(name: "add", opType: "Add", inputs: ["f", "bias"], outputs: ["b"]),
                     Node(name: "q", opType: "QuantizeLinear", inputs: ["b", "ys", "yz"], outputs: ["y"])]
        for shape in [[256, channels], [channels]] {
            let g = Graph(nodes: nodes, inputs: [ValueInfo(name: "x", type: .tensor(dtype: .uint8, shape: nil))],
                          outputs: [ValueInfo(name: "y", type: nil)], initializers: inits)
            XCTAssertEqual(try GraphOptimizer.optimize(g, opsets: opsets, options: SessionOptions()).nodes.map(\.opType), ["QuantizedChannelTable"])
            let count = shape.reduce(1, *)
            let x = Tensor(shape: shape, values: (0..<count).map { UInt8(($0 / channels * 3 + $0 % channels * 29) % 256) })
            func output(_ level: Int) throws -> Tensor {
                try Session(graph: g, opsets: opsets, options: SessionOptions(threads: 1, optimizationLevel: level)).run(["x": x])[0]
            }
            let plain = try output(0), fused = try output(1)
            XCTAssertEqual(fused.shape, plain.shape, "X \(shape)")
            XCTAssertEqual(fused.array(of: UInt8.self), plain.array(of: UInt8.self), "X \(shape)")
        }
    }

    /// Softmax(Div(scores, c) + mask) over the last axis (an attention) runs as one fused step
    /// with the same results; Mul by a constant too; a mask that widens the result, or integer
    /// scores, go through the three operators as before.
    func testScaledMaskedSoftmaxGivesWhatItsThreeOperatorsGive() throws {
        func random(_ shape: [Int], _ seed: UInt64) -> Tensor {
            let bytes = SeededGenerator(seed: seed).bytes(shape.reduce(1, *))
            return Tensor(shape: shape, values: bytes.map { Float($0) / 16 - 8 })
        }
        for (scale, maskShape) in [("Div", [2, 1, 1, 19]), ("Mul", [19]), ("Div", [2, 3, 5, 1]), ("Div", [4, 2, 3, 5, 19])] {
            let inits = [Initializer(name: "c", tensor: Tensor(scalar: Float(scale == "Div" ? 8 : 0.125)))]
            let nodes = [Node(name: "scale", opType: scale, inputs: ["x", "c"], outputs: ["s"]),
                         Node(name: "mask", opType: "Add", inputs: ["s", "m"], outputs: ["a"]),
                         Node(name: "softmax", opType: "Softmax", inputs: ["a"], outputs: ["y"], attributes: [Attribute(name: "axis", value: .int(-1))])]
            let g = Graph(nodes: nodes, inputs: [ValueInfo(name: "x", type: nil), ValueInfo(name: "m", type: nil)],
                          outputs: [ValueInfo(name: "y", type: nil)], initializers: inits)
            let optimized = try GraphOptimizer.optimize(g, opsets: opsets, options: SessionOptions())
            XCTAssertEqual(optimized.nodes.map(\.opType), ["ScaledMaskedSoftmax"])
            let feeds = ["x": random([2, 3, 5, 19], 1), "m": random(maskShape, 2)]
            func output(_ level: Int, threads: Int) throws -> Tensor {
                try Session(graph: g, opsets: opsets, options: SessionOptions(threads: threads, optimizationLevel: level)).run(feeds)[0]
            }
            let plain = try output(0, threads: 1), fused = try output(1, threads: 2)
            XCTAssertEqual(plain.shape, fused.shape, "\(scale) mask \(maskShape)")
            XCTAssertEqual(plain.array(of: Float.self), fused.array(of: Float.self), "\(scale) mask \(maskShape)")
        }
    }

    func testNothingFusesAcrossAGraphOutput() throws {
        let g = convBnRelu()
        g.outputs.append(ValueInfo(name: "c", type: nil))  // the Conv result is also returned
        let optimized = try GraphOptimizer.optimize(g, opsets: opsets, options: SessionOptions())
        XCTAssertEqual(withoutLayout(optimized).map(\.opType), ["Conv", "BatchNormalization", "Relu"])
    }

    func testIdentityToAGraphOutputIsRemovedAndItsValueRenamed() throws {
        // x -> Relu -> r -> Identity -> y (graph output); r is also read by Neg -> z.
        let g = Graph(nodes: [Node(name: "relu", opType: "Relu", inputs: ["x"], outputs: ["r"]),
                              Node(name: "copy", opType: "Identity", inputs: ["r"], outputs: ["y"]),
                              Node(name: "neg", opType: "Neg", inputs: ["r"], outputs: ["z"])],
                      inputs: [tensorInput("x", [4])], outputs: [ValueInfo(name: "y", type: nil), ValueInfo(name: "z", type: nil)])
        let optimized = try GraphOptimizer.optimize(g, opsets: opsets, options: SessionOptions())
        XCTAssertEqual(optimized.nodes.map(\.opType), ["Relu", "Neg"])
        XCTAssertEqual(optimized.nodes[0].outputs, ["y"])
        XCTAssertEqual(optimized.nodes[1].inputs, ["y"])
        let x = Tensor(shape: [4], values: [Float]([-1, 2, -3, 4]))
        for level in [0, 1] {
            let out = try Session(graph: g, opsets: opsets, options: SessionOptions(threads: 1, optimizationLevel: level)).run(["x": x])
            XCTAssertEqual(out[0].array(of: Float.self), [0, 2, 0, 4])
            XCTAssertEqual(out[1].array(of: Float.self), [0, -2, 0, -4])
        }
        // An Identity of a graph input, or of a value that is itself a graph output, stays.
        for (input, outputs) in [("x", ["y"]), ("r", ["y", "r"])] {
            let kept = Graph(nodes: [Node(name: "relu", opType: "Relu", inputs: ["x"], outputs: ["r"]),
                                     Node(name: "copy", opType: "Identity", inputs: [input], outputs: ["y"])],
                             inputs: [tensorInput("x", [4])], outputs: outputs.map { ValueInfo(name: $0, type: nil) })
            XCTAssertTrue(try GraphOptimizer.optimize(kept, opsets: opsets, options: SessionOptions()).nodes.contains { $0.opType == "Identity" })
        }
    }

    func testMatMulAddReluFusesAndConstantsFold() throws {
        // y = Relu(MatMul(x, W) + (b1 + b2)); (b1 + b2) is folded, then bias and Relu fuse.
        let inits = [
            Initializer(name: "W", tensor: Tensor(shape: [4, 3], values: values(12, 6))),
            Initializer(name: "b1", tensor: Tensor(shape: [3], values: [Float]([0.1, -0.2, 0.3]))),
            Initializer(name: "b2", tensor: Tensor(shape: [3], values: [Float]([0.5, 0.5, -1]))),
        ]
        let nodes = [
            Node(name: "sum", opType: "Add", inputs: ["b1", "b2"], outputs: ["b"]),
            Node(name: "mm", opType: "MatMul", inputs: ["x", "W"], outputs: ["m"]),
            Node(name: "id", opType: "Identity", inputs: ["m"], outputs: ["m2"]),
            Node(name: "add", opType: "Add", inputs: ["b", "m2"], outputs: ["a"]),
            Node(name: "relu", opType: "Relu", inputs: ["a"], outputs: ["y"]),
            Node(name: "unused", opType: "Sigmoid", inputs: ["x"], outputs: ["dead"]),
        ]
        let g = Graph(nodes: nodes, inputs: [tensorInput("x", [2, 4])], outputs: [ValueInfo(name: "y", type: nil)], initializers: inits)
        let optimized = try GraphOptimizer.optimize(g, opsets: opsets, options: SessionOptions())
        XCTAssertEqual(optimized.nodes.map(\.opType), ["MatMul"])
        XCTAssertEqual(optimized.nodes[0].inputs.count, 3)
        let x = Tensor(shape: [2, 4], values: values(8, 7))
        XCTAssertEqual(try run(g, level: 0, ["x": x]), try run(g, level: 1, ["x": x]))
    }

    func testOverridableInitializersAreNotTreatedAsConstants() throws {
        // W is both an initializer and a graph input: a feed replaces it, so nothing may fold it.
        let g = Graph(nodes: [Node(name: "mm", opType: "MatMul", inputs: ["x", "W"], outputs: ["m"]),
                              Node(name: "relu", opType: "Relu", inputs: ["m"], outputs: ["y"])],
                      inputs: [tensorInput("x", [1, 2]), tensorInput("W", [2, 2])],
                      outputs: [ValueInfo(name: "y", type: nil)],
                      initializers: [Initializer(name: "W", tensor: Tensor(shape: [2, 2], values: [Float]([1, 0, 0, 1])))])
        let x = Tensor(shape: [1, 2], values: [Float(1), -2])
        let w = Tensor(shape: [2, 2], values: [Float(0), 1, 1, 0])
        XCTAssertEqual(try run(g, level: 1, ["x": x, "W": w]), [0, 1])
        XCTAssertEqual(try run(g, level: 1, ["x": x]), [1, 0])
    }
}

final class InitializerOverrideTests: XCTestCase {
    func testInitializersOfIRBelow4AreConstants() throws {
        let g = Graph(nodes: [Node(name: "mm", opType: "MatMul", inputs: ["x", "W"], outputs: ["y"])],
                      inputs: [ValueInfo(name: "x", type: .tensor(dtype: .float, shape: [.value(1), .value(2)])),
                               ValueInfo(name: "W", type: .tensor(dtype: .float, shape: [.value(2), .value(2)]))],
                      outputs: [ValueInfo(name: "y", type: nil)],
                      initializers: [Initializer(name: "W", tensor: Tensor(shape: [2, 2], values: [Float(1), 0, 0, 1]))])
        let x = Tensor(shape: [1, 2], values: [Float(1), -2])
        let w = Tensor(shape: [2, 2], values: [Float(0), 1, 1, 0])
        let old = try Session(graph: g, opsets: [OpsetImport(domain: "", version: 9)], irVersion: 3)
        XCTAssertEqual(try old.run(["x": x])[0].array(of: Float.self), [1, -2])
        XCTAssertThrowsError(try old.run(["x": x, "W": w])) { XCTAssertTrue("\($0)".contains("IR version < 4")) }
        let new = try Session(graph: g, opsets: [OpsetImport(domain: "", version: 9)], irVersion: 4)
        XCTAssertEqual(try new.run(["x": x, "W": w])[0].array(of: Float.self), [-2, 1])
    }
}
