import KerfCore
import KerfTestSupport
import KerfTrain
import XCTest

/// Tile and constant-mode Pad against finite differences (float64).
final class TileAndPadGradientTests: XCTestCase {
    private func ints(_ name: String, _ values: [Int]) -> Initializer {
        Initializer(name: name, tensor: Tensor(shape: [values.count], values: values.map(Int64.init)))
    }

    func testTile() throws {
        try checkGradients(GradientCase(op: "Tile", trained: [("x", [2, 3], -1...1)], inputs: ["x", "r"], constants: [ints("r", [3, 2])]))
        try checkGradients(GradientCase(op: "Tile", trained: [("x", [2, 1, 3], -1...1)], inputs: ["x", "r"], constants: [ints("r", [1, 4, 1])]))
        try checkGradients(GradientCase(op: "Tile", trained: [("x", [4], -1...1)], inputs: ["x", "r"], constants: [ints("r", [1])]))
    }

    /// Repeats fed at run time (inference does not know them): the interleaved shape is
    /// computed in the graph, and the gradient matches the one with constant repeats.
    func testTileWithFedRepeats() throws {
        let x = Initializer(name: "x", tensor: Tensor(shape: [2, 3], values: [0.5, -1, 2, 0.25, 1.5, -0.75]))
        func gradient(fed: Bool) throws -> [Double] {
            let node = Node(name: "tile", opType: "Tile", inputs: ["x", "r"], outputs: ["y"])
            let repeats = Tensor(shape: [2], values: [Int64(2), 3])
            let graph = Graph(nodes: [node], inputs: fed ? [ValueInfo(name: "r", type: .tensor(dtype: .int64, shape: [.value(2)]))] : [],
                              outputs: [ValueInfo(name: "y", type: nil)],
                              initializers: [x] + (fed ? [] : [Initializer(name: "r", tensor: repeats)]))
            let model = Model(graph: graph, opsetImports: [OpsetImport(domain: "", version: 17)])
            let trainer = try Trainer(model: model, loss: Loss(.meanSquaredError(output: "y", target: "t")),
                                      parameters: ParameterSelection(trainable: ["x"]), options: TrainerOptions(threads: 1, optimizationLevel: 0))
            let target = Tensor(shape: [4, 9], values: (0..<36).map { Double($0) / 36 })
            try trainer.backward(fed ? ["t": target, "r": repeats] : ["t": target])
            return try XCTUnwrap(trainer.gradients()["x"]).array(of: Double.self)
        }
        assertClose(try gradient(fed: true), try gradient(fed: false), absolute: 1e-12)
    }

    func testPad() throws {
        for pads in [[1, 0, 2, 1], [0, 2, 0, 0], [-1, 1, 0, -2], [2, -1, -1, 3]] {
            try checkGradients(GradientCase(op: "Pad", trained: [("x", [4, 5], -1...1)], inputs: ["x", "p"], constants: [ints("p", pads)]))
        }
        let value = Initializer(name: "v", tensor: Tensor(scalar: 0.5))
        try checkGradients(GradientCase(op: "Pad", trained: [("x", [2, 3, 4], -1...1)], inputs: ["x", "p", "v"],
                                        constants: [ints("p", [0, 1, 1, 0, 2, 1]), value]))
        // Opset 18 axes; opset 2 attributes.
        try checkGradients(GradientCase(op: "Pad", trained: [("x", [2, 3, 4], -1...1)], inputs: ["x", "p", "", "a"],
                                        constants: [ints("p", [1, -1, 2, 1]), ints("a", [-1, 1])], opset: 18))
        try checkGradients(GradientCase(op: "Pad", attributes: [Attribute(name: "pads", value: .ints([1, 0, 0, 2]))],
                                        trained: [("x", [3, 4], -1...1)], inputs: ["x"], opset: 10))
    }
}
