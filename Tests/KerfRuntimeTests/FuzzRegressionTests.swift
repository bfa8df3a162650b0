import FoundationEssentials
import XCTest
@testable import KerfCore
@testable import KerfRuntime

/// Crashes the fuzzer found (`Tests/Fuzz/fuzz_load.c`; the inputs are in
/// `Tests/Fuzz/regressions/`), each rebuilt here as the smallest graph that shows it. Every run
/// must throw a KerfError, at every optimization level, never trap.
final class FuzzRegressionTests: XCTestCase {
    private let opsets = [OpsetImport(domain: "", version: 17)]

    /// The KerfError that building or running `graph` on `feeds` throws at optimization `level`;
    /// fails the test when it runs or throws anything else.
    private func refusal(_ graph: Graph, _ feeds: [String: Tensor], level: Int,
                         file: StaticString = #filePath, line: UInt = #line) -> KerfError? {
        refusal(of: graph, feeds: feeds, options: SessionOptions(threads: 1, optimizationLevel: level), opsets: opsets,
                file: file, line: line)
    }

    /// regressions/reshape-product-wraps.onnx: a Reshape target [1, 4, 2^62 + 2, 4] of a
    /// 32-element input. Its product wraps to exactly 32 in unchecked arithmetic, so the count
    /// check passed and `Tensor.reshaped` trapped (or, unchecked, made a view 2^66 elements long).
    func testReshapeTargetWhoseProductWrapsToTheInputCountIsRefused() {
        let target: [Int64] = [1, 4, (1 << 62) + 2, 4]
        XCTAssertEqual(target.reduce(Int64(1), &*), 32, "the product wraps to the input's count")
        let node = Node(name: "r", opType: "Reshape", inputs: ["x", "shape"], outputs: ["y"])
        let shape = Initializer(name: "shape", tensor: Tensor(shape: [4], values: target))
        let graph = Graph(nodes: [node], inputs: [ValueInfo(name: "x", type: nil)],
                          outputs: [ValueInfo(name: "y", type: nil)], initializers: [shape])
        let x = Tensor(shape: [1, 4, 8], values: [Float](repeating: 1, count: 32))
        for level in [0, 1] {
            let e = refusal(graph, ["x": x], level: level)
            XCTAssertEqual(e?.status, 5, "level \(level): \(String(describing: e))")
        }
        XCTAssertThrowsError(try reshapeTarget([1, 4, -1, (1 << 62) + 2], input: [1, 4, 8], allowZero: false))
    }

    /// regressions/maxpool-without-outputs.onnx: DequantizeLinear -> MaxPool with no outputs.
    /// The quantized pass-through fusion accepted a node with no outputs and read `outputs[0]`
    /// past the array (unchecked in this module: a segfault). Loading refuses such a node
    /// (KerfCoreTests.NodeArityTests); a session of a graph built in Swift refuses it too.
    func testQuantizedPassThroughOfANodeWithoutOutputsIsRefused() throws {
        let nodes = [
            Node(name: "q", opType: "QuantizeLinear", inputs: ["x", "s", "z"], outputs: ["xq"]),
            Node(name: "dq", opType: "DequantizeLinear", inputs: ["xq", "s", "z"], outputs: ["xd"]),
            Node(name: "pool", opType: "MaxPool", inputs: ["xd"], outputs: [],
                 attributes: [Attribute(name: "kernel_shape", value: .ints([1, 1]))]),
            Node(name: "id", opType: "Identity", inputs: ["x"], outputs: ["y"]),
        ]
        let graph = Graph(nodes: nodes, inputs: [ValueInfo(name: "x", type: nil)], outputs: [ValueInfo(name: "y", type: nil)],
                          initializers: [Initializer(name: "s", tensor: Tensor(scalar: Float(0.5))),
                                         Initializer(name: "z", tensor: Tensor(scalar: UInt8(128)))])
        let x = Tensor(shape: [1, 1, 2, 2], values: [Float(1), 2, 3, 4])
        for level in [0, 1] {
            let e = refusal(graph, ["x": x], level: level)
            XCTAssertEqual(e?.status, 3, "level \(level): \(String(describing: e))")
            XCTAssertTrue(e?.message.contains("node 'pool' (MaxPool) has no outputs") ?? false, "\(String(describing: e))")
        }
    }

    /// regressions/dequantize-without-inputs.onnx: a DequantizeLinear with no inputs feeding a
    /// Conv's weight. The static quantized-product fusion read its `inputs[0]` past the array.
    func testStaticQuantizedProductOfADequantizeWithoutInputsIsRefused() throws {
        let nodes = [
            Node(name: "dqw", opType: "DequantizeLinear", inputs: [], outputs: ["w"]),
            Node(name: "conv", opType: "Conv", inputs: ["x", "w"], outputs: ["y"]),
        ]
        let graph = Graph(nodes: nodes, inputs: [ValueInfo(name: "x", type: nil)], outputs: [ValueInfo(name: "y", type: nil)])
        let x = Tensor(shape: [1, 1, 2, 2], values: [Float(1), 2, 3, 4])
        for level in [0, 1] {
            let e = refusal(graph, ["x": x], level: level)
            XCTAssertEqual(e?.status, 3, "level \(level): \(String(describing: e))")
            XCTAssertTrue(e?.message.contains("takes at least 2") ?? false, "\(String(describing: e))")
        }
    }

    /// regressions/argmin-of-a-scalar.onnx: ArgMin of an input fed as a scalar. The axis check
    /// accepted axis 0 of rank 0, and the kernel read `shape[0]` of an empty shape (unchecked in
    /// this module: a segfault). No operator takes an axis of a scalar; each refuses it.
    func testAnAxisOfAScalarIsRefusedByEveryOperatorThatTakesOne() {
        let scalar = Tensor(scalar: Float(2))
        let axisZero = { (name: String) in Initializer(name: name, tensor: Tensor(shape: [1], values: [Int64(0)])) }
        let cases: [(op: String, inputs: [String], attributes: [Attribute], initializers: [Initializer])] = [
            ("ArgMin", ["x"], [], []), ("ArgMax", ["x"], [Attribute(name: "axis", value: .int(-1))], []),
            ("Concat", ["x", "x"], [Attribute(name: "axis", value: .int(0))], []),
            ("Softmax", ["x"], [], []), ("LogSoftmax", ["x"], [], []), ("ReduceSum", ["x", "axes"], [], [axisZero("axes")]),
            ("Split", ["x"], [], []), ("CumSum", ["x", "axis"], [], [Initializer(name: "axis", tensor: Tensor(scalar: Int64(0)))]),
            ("Squeeze", ["x", "axes"], [], [axisZero("axes")]),
            ("GatherElements", ["x", "i"], [], [Initializer(name: "i", tensor: Tensor(scalar: Int64(0)))]),
            ("TopK", ["x", "k"], [], [Initializer(name: "k", tensor: Tensor(shape: [1], values: [Int64(1)]))]),
            ("CumProd", ["x", "axis"], [], [Initializer(name: "axis", tensor: Tensor(scalar: Int64(0)))]),
            ("Hardmax", ["x"], [], []), ("LpNormalization", ["x"], [], []),
            ("SoftmaxCrossEntropyLoss", ["x", "t"], [], [Initializer(name: "t", tensor: Tensor(scalar: Int64(0)))]),
            ("NegativeLogLikelihoodLoss", ["x", "t"], [], [Initializer(name: "t", tensor: Tensor(scalar: Int64(0)))]),
        ]
        for c in cases {
            let node = Node(name: "n", opType: c.op, inputs: c.inputs, outputs: c.op == "TopK" ? ["y", "k_indices"] : ["y"],
                            attributes: c.attributes)
            let graph = Graph(nodes: [node], inputs: [ValueInfo(name: "x", type: nil)],
                              outputs: [ValueInfo(name: "y", type: nil)], initializers: c.initializers)
            for level in [0, 1] {
                let e = refusal(graph, ["x": scalar], level: level)
                XCTAssertNotNil(e, "\(c.op) at level \(level)")
            }
        }
    }
}
