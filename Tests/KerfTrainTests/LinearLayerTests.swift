import KerfCore
import KerfRuntime
import KerfTestSupport
@testable import KerfTrain
import XCTest

/// `fuseExportedLinearLayers`: torch's Transpose(W) → MatMul → Add(bias) as one Gemm (with
/// Flatten/Reshape around it for inputs of rank > 2), the same values, and chains it must leave.
final class LinearLayerTests: XCTestCase {
    private let random = SeededGenerator(seed: 3)

    private func floats(_ shape: [Int]) -> Tensor { Tensor(shape: shape, values: random.floats(shape.reduce(1, *))) }

    /// X [xShape] · Wᵀ (+ b), W [5, 4], as torch.onnx.export writes nn.Linear.
    private func linear(_ xShape: [Int], bias: Bool, extraReader: Bool = false) -> Graph {
        var nodes = [Node(name: "t", opType: "Transpose", inputs: ["w"], outputs: ["wt"], attributes: [Attribute(name: "perm", value: .ints([1, 0]))]),
                     Node(name: "mm", opType: "MatMul", inputs: ["x", "wt"], outputs: [bias ? "p" : "y"])]
        if bias { nodes.append(Node(name: "add", opType: "Add", inputs: ["b", "p"], outputs: ["y"])) }
        var outputs = [ValueInfo(name: "y", type: nil)]
        if extraReader {
            nodes.append(Node(name: "other", opType: "Neg", inputs: ["wt"], outputs: ["z"]))
            outputs.append(ValueInfo(name: "z", type: nil))
        }
        return Graph(nodes: nodes, inputs: [ValueInfo(name: "x", type: .tensor(dtype: .float, shape: xShape.map(Dim.value)))],
                     outputs: outputs, initializers: [Initializer(name: "w", tensor: floats([5, 4])), Initializer(name: "b", tensor: floats([5]))])
    }

    private func run(_ g: Graph, _ x: Tensor) throws -> [Float] {
        let session = try Session(model: Model(graph: g, opsetImports: [OpsetImport(domain: "", version: 17)]), options: SessionOptions(threads: 1))
        return try session.run(["x": x])[0].array(of: Float.self)
    }

    func testLinearLayersBecomeOneGemmWithTheSameValues() throws {
        for (shape, bias) in [([3, 4], true), ([2, 3, 4], true), ([2, 3, 4], false), ([2, 1, 3, 4], true)] {
            let g = linear(shape, bias: bias)
            let x = floats(shape)
            let want = try run(g, x)
            g.fuseExportedLinearLayers(opset: 17)
            let ops = g.nodes.map(\.opType)
            XCTAssertEqual(ops.filter { $0 == "Gemm" }.count, 1, "\(shape): \(ops)")
            XCTAssertFalse(ops.contains("Transpose") || ops.contains("MatMul") || ops.contains("Add"), "\(shape): \(ops)")
            let gemm = g.nodes.first { $0.opType == "Gemm" }!
            XCTAssertEqual(gemm.inputs.count, bias ? 3 : 2)
            XCTAssertEqual(ops.contains("Reshape"), shape.count > 2)
            let got = try run(g, x)
            XCTAssertEqual(got.count, want.count)
            for (a, b) in zip(got, want) { XCTAssertEqual(a, b, accuracy: 1e-5, "\(shape)") }
        }
    }

    func testChainsWithOtherReadersOrOlderOpsetsAreLeftAlone() throws {
        let shared = linear([2, 3, 4], bias: true, extraReader: true)
        shared.fuseExportedLinearLayers(opset: 17)
        XCTAssertEqual(shared.nodes.map(\.opType), ["Transpose", "MatMul", "Add", "Neg"])
        let old = linear([2, 3, 4], bias: true)
        old.fuseExportedLinearLayers(opset: 12)
        XCTAssertEqual(old.nodes.map(\.opType), ["Transpose", "MatMul", "Add"])
    }
}
