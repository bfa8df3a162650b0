import XCTest
@testable import KerfCore
@testable import KerfKernels
@testable import KerfRuntime

/// A fused int8 product node read as a typed value and written back: every stage lands in its
/// place among the inputs and attributes, and what the fusions assemble reads back as the
/// stages they fused.
final class QuantizedProductNodeTests: XCTestCase {
    func testEveryStageOfAStaticMatMulSurvivesWritingAndReading() throws {
        var epilogue = QuantizedEpilogue()
        epilogue.bias = .integer(values: "bq", scale: "bs")
        epilogue.activation = .clip(min: 0, max: 6)
        epilogue.quantization = .init(scale: "ys", zero: "yz")
        epilogue.table = .init(bytes: "t", perChannel: true, outputType: .int8, rank: 3,
                               affine: .init(x: .init(scale: "txs", zero: "txz"), k: "k", shift: "sh", y: .init(scale: "tys", zero: "tyz")))
        let product = QuantizedProductNode(name: "mm", kind: .matMul, x: "x", xQuantization: .init(scale: "xs", zero: "xz"), weight: "w",
                                           weightScale: "ws", epilogue: epilogue,
                                           attributes: [Attribute(name: "transB", value: .int(1))], outputs: ["y"])
        let node = product.node
        XCTAssertEqual(node.opType, "QuantizedMatMul")
        XCTAssertEqual(node.domain, "kerf")
        XCTAssertEqual(node.inputs, ["x", "xs", "xz", "w", "ws", "bq", "bs", "ys", "yz", "", "", "", "", "",
                                     "t", "txs", "txz", "k", "sh", "tys", "tyz"])
        let read = try XCTUnwrap(try QuantizedProductNode(node))
        XCTAssertEqual(read.epilogue, epilogue)
        XCTAssertTrue(read.transB)
        XCTAssertEqual(read.attributes.map(\.name), ["transB"])
        XCTAssertEqual(read.node.inputs, node.inputs)
    }

    func testFloatStagesOfADynamicMatMulSurvive() throws {
        var epilogue = QuantizedEpilogue()
        epilogue.bias = .float("b", rank: 0)
        epilogue.activation = .gelu
        epilogue.residual = .init(value: "r", layerNorm: .init(scale: "g", bias: nil, epsilon: 1e-3))
        var product = QuantizedProductNode(name: "mm", kind: .dynamicMatMul, x: "xq", xQuantization: .init(scale: "xs", zero: "xz"),
                                           weight: "w", weightZero: "wz", weightScale: "ws", epilogue: epilogue, outputs: ["y"])
        product.xRange = "range"
        XCTAssertEqual(product.node.inputs, ["xq", "w", "wz", "ws", "b", "xs", "xz", "range", "", "r", "g"])
        let read = try XCTUnwrap(try QuantizedProductNode(product.node))
        XCTAssertEqual(read.epilogue, epilogue)
        XCTAssertEqual(read.xRange, "range")

        product.epilogue = QuantizedEpilogue()
        product.epilogue.heads = .init(shape: "shape", keysTransposed: true)
        product.xQuantization = nil
        product.xRange = nil
        XCTAssertEqual(product.node.inputs, ["xq", "w", "wz", "ws", "", "", "", "", "shape"])
        XCTAssertEqual(try QuantizedProductNode(product.node)?.epilogue.heads, .init(shape: "shape", keysTransposed: true))
    }

    func testNodesThatAreNotProductsOrAreMalformed() throws {
        XCTAssertNil(try QuantizedProductNode(Node(name: "a", opType: "QuantizedAdd", domain: "kerf", inputs: ["x"], outputs: ["y"])))
        XCTAssertNil(try QuantizedProductNode(Node(name: "m", opType: "MatMul", inputs: ["x", "w"], outputs: ["y"])))
        let twoBiases = Node(name: "m", opType: "QuantizedMatMul", domain: "kerf", inputs: ["x", "xs", "xz", "w", "ws", "bq", "bs", "", "", "bf"],
                             outputs: ["y"])
        XCTAssertThrowsError(try QuantizedProductNode(twoBiases))
    }

    /// MatMul -> Add(bias [1, N]) -> Relu -> QuantizeLinear on DequantizeLinear inputs: the
    /// static fusion and the tail fusion give one product whose epilogue has those stages.
    func testFusionsAssembleTheEpilogueOfTheStagesTheyFuse() throws {
        let (k, n) = (4, 3)
        let inits = [Initializer(name: "xs", tensor: Tensor(scalar: Float(0.03))), Initializer(name: "xz", tensor: Tensor(scalar: UInt8(128))),
                     Initializer(name: "w", tensor: Tensor(shape: [k, n], values: (0..<(k * n)).map { Int8($0) - 6 })),
                     Initializer(name: "ws", tensor: Tensor(scalar: Float(0.004))),
                     Initializer(name: "b", tensor: Tensor(shape: [1, n], values: [Float(0.1), -0.2, 0.3])),
                     Initializer(name: "ys", tensor: Tensor(scalar: Float(0.02))), Initializer(name: "yz", tensor: Tensor(scalar: UInt8(0)))]
        let nodes = [Node(name: "dq", opType: "DequantizeLinear", inputs: ["xq", "xs", "xz"], outputs: ["xf"]),
                     Node(name: "dqw", opType: "DequantizeLinear", inputs: ["w", "ws"], outputs: ["wf"]),
                     Node(name: "mm", opType: "MatMul", inputs: ["xf", "wf"], outputs: ["m"]),
                     Node(name: "add", opType: "Add", inputs: ["m", "b"], outputs: ["a"]),
                     Node(name: "relu", opType: "Relu", inputs: ["a"], outputs: ["r"]),
                     Node(name: "qy", opType: "QuantizeLinear", inputs: ["r", "ys", "yz"], outputs: ["y"])]
        let g = Graph(nodes: nodes, inputs: [ValueInfo(name: "xq", type: .tensor(dtype: .uint8, shape: nil))],
                      outputs: [ValueInfo(name: "y", type: nil)], initializers: inits)
        let optimized = try GraphOptimizer.optimize(g, opsets: [OpsetImport(domain: "", version: 17)], options: SessionOptions())
        XCTAssertEqual(optimized.nodes.count, 1)
        let product = try XCTUnwrap(try QuantizedProductNode(optimized.nodes[0]))
        XCTAssertEqual(product.kind, .matMul)
        XCTAssertEqual(product.x, "xq")
        XCTAssertEqual(product.epilogue.bias, .float("b", rank: 2))
        XCTAssertEqual(product.epilogue.activation, .relu)
        XCTAssertEqual(product.epilogue.quantization, .init(scale: "ys", zero: "yz"))
        XCTAssertNil(product.epilogue.heads)
        XCTAssertNil(product.epilogue.residual)
        XCTAssertNil(product.epilogue.table)
        XCTAssertEqual(product.outputs, ["y"])
    }
}
