import XCTest
@testable import KerfCore
@testable import KerfRuntime
import KerfTestSupport

final class PatternFusionTests: XCTestCase {
    private let opsets = [OpsetImport(domain: "", version: 14)]

    private func scalar(_ name: String, _ v: Float) -> Initializer { Initializer(name: name, tensor: Tensor(scalar: v)) }

    /// x -> decomposed LayerNorm (torch export, opset 14) -> GELU via Erf -> y
    private func graph() -> Graph {
        var mean = Node(name: "mean", opType: "ReduceMean", inputs: ["x"], outputs: ["mu"])
        mean.attributes = [Attribute(name: "axes", value: .ints([-1]))]
        var variance = Node(name: "var", opType: "ReduceMean", inputs: ["sq"], outputs: ["v"])
        variance.attributes = [Attribute(name: "axes", value: .ints([-1]))]
        let nodes = [
            mean,
            Node(name: "sub", opType: "Sub", inputs: ["x", "mu"], outputs: ["d"]),
            Node(name: "pow", opType: "Pow", inputs: ["d", "two"], outputs: ["sq"]),
            variance,
            Node(name: "addeps", opType: "Add", inputs: ["v", "eps"], outputs: ["ve"]),
            Node(name: "sqrt", opType: "Sqrt", inputs: ["ve"], outputs: ["s"]),
            Node(name: "div", opType: "Div", inputs: ["d", "s"], outputs: ["n"]),
            Node(name: "mul", opType: "Mul", inputs: ["n", "gamma"], outputs: ["ng"]),
            Node(name: "add", opType: "Add", inputs: ["ng", "beta"], outputs: ["h"]),
            Node(name: "div2", opType: "Div", inputs: ["h", "root2"], outputs: ["a"]),
            Node(name: "erf", opType: "Erf", inputs: ["a"], outputs: ["e"]),
            Node(name: "plus1", opType: "Add", inputs: ["e", "one"], outputs: ["e1"]),
            Node(name: "mulx", opType: "Mul", inputs: ["h", "e1"], outputs: ["xe"]),
            Node(name: "half", opType: "Mul", inputs: ["xe", "half_c"], outputs: ["y"]),
        ]
        let inits = [scalar("two", 2), scalar("eps", 1e-5), scalar("root2", Float(2).squareRoot()), scalar("one", 1), scalar("half_c", 0.5),
                     Initializer(name: "gamma", tensor: Tensor(shape: [4], values: [Float(1), 0.5, 2, 1.5])),
                     Initializer(name: "beta", tensor: Tensor(shape: [4], values: [Float(0.1), -0.1, 0, 0.2]))]
        return Graph(nodes: nodes, inputs: [ValueInfo(name: "x", type: .tensor(dtype: .float, shape: [.symbol("N"), .value(4)]))],
                     outputs: [ValueInfo(name: "y", type: nil)], initializers: inits)
    }

    func testDecomposedLayerNormAndGeluBecomeFusedNodes() throws {
        let g = graph()
        let optimized = try GraphOptimizer.optimize(g, opsets: opsets, options: SessionOptions())
        XCTAssertEqual(optimized.nodes.map(\.opType), ["LayerNormalization", "Gelu"])
        let x = Tensor(shape: [3, 4], values: [Float(1), 2, 3, 4, -1, 0, 1, 0.5, 10, -10, 3, 3])
        let plain = try Session(graph: g, opsets: opsets, options: SessionOptions(optimizationLevel: 0)).run(["x": x])[0]
        let fused = try Session(graph: g, opsets: opsets, options: SessionOptions(optimizationLevel: 1)).run(["x": x])[0]
        assertClose(fused, plain, absolute: 1e-5)
    }

    func testChainsWithExtraReadersAreLeftAlone() throws {
        let g = graph()
        g.outputs.append(ValueInfo(name: "s", type: nil))  // the std-dev is also a graph output
        let optimized = try GraphOptimizer.optimize(g, opsets: opsets, options: SessionOptions())
        XCTAssertFalse(optimized.nodes.contains { $0.opType == "LayerNormalization" })
        XCTAssertTrue(optimized.nodes.contains { $0.opType == "Gelu" })
    }
}
