import KerfCore
import KerfTestSupport
import KerfTrain
import XCTest

/// MaxPool, GlobalMaxPool, AveragePool and GlobalAveragePool against finite differences (float64).
final class PoolingGradientTests: XCTestCase {
    private func attr(_ name: String, _ v: Int) -> Attribute { Attribute(name: name, value: .int(Int64(v))) }
    private func attr(_ name: String, _ v: [Int]) -> Attribute { Attribute(name: name, value: .ints(v.map(Int64.init))) }
    private func attr(_ name: String, _ v: String) -> Attribute { Attribute(name: name, value: .string(Data(v.utf8))) }

    private func check(_ op: String, _ attributes: [Attribute], shape: [Int] = [2, 3, 5, 5], opset: Int = 19,
                       file: StaticString = #filePath, line: UInt = #line) throws {
        try checkGradients(GradientCase(op: op, attributes: attributes, trained: [("x", shape, -1...1)], inputs: ["x"], opset: opset),
                           file: file, line: line)
    }

    func testMaxPool() throws {
        try check("MaxPool", [attr("kernel_shape", [2, 2]), attr("strides", [2, 2])])
        try check("MaxPool", [attr("kernel_shape", [3, 3]), attr("strides", [2, 2]), attr("pads", [1, 1, 1, 1])])
        try check("MaxPool", [attr("kernel_shape", [3, 3])])  // overlapping windows: one input can be the maximum of several
        try check("MaxPool", [attr("kernel_shape", [2, 2]), attr("strides", [2, 2]), attr("ceil_mode", 1)])
        try check("MaxPool", [attr("kernel_shape", [3, 2]), attr("strides", [2, 1]), attr("pads", [0, 1, 2, 0]), attr("ceil_mode", 1)])
        try check("MaxPool", [attr("kernel_shape", [2, 2]), attr("dilations", [2, 2]), attr("pads", [1, 1, 1, 1])], shape: [2, 3, 6, 6])
        try check("MaxPool", [attr("kernel_shape", [3, 3]), attr("strides", [2, 2]), attr("auto_pad", "SAME_UPPER")])
        try check("MaxPool", [attr("kernel_shape", [2, 2]), attr("auto_pad", "SAME_LOWER")])
        try check("MaxPool", [attr("kernel_shape", [3]), attr("strides", [2]), attr("pads", [1, 1])], shape: [2, 3, 8])
        try check("MaxPool", [attr("kernel_shape", [2, 2, 2]), attr("strides", [1, 2, 2])], shape: [1, 2, 3, 4, 4])
        // The Indices output is there but not read.
        try checkGradients(GradientCase(op: "MaxPool", attributes: [attr("kernel_shape", [2, 2])], trained: [("x", [2, 3, 4, 4], -1...1)],
                                        inputs: ["x"], outputs: 2))
    }

    func testMaxPoolTiesGoToTheFirstMaximum() throws {
        // Every window of a constant plane ties; PyTorch sends each output's gradient to the
        // window's first element.
        let x = Initializer(name: "x", tensor: Tensor(shape: [1, 1, 3, 3], values: [Double](repeating: 1, count: 9)))
        let node = Node(name: "pool", opType: "MaxPool", inputs: ["x"], outputs: ["y"],
                        attributes: [attr("kernel_shape", [2, 2]), attr("strides", [1, 1])])
        let graph = Graph(nodes: [node], inputs: [], outputs: [ValueInfo(name: "y", type: nil)], initializers: [x])
        let model = Model(graph: graph, opsetImports: [OpsetImport(domain: "", version: 17)])
        let trainer = try Trainer(model: model, loss: Loss(.meanSquaredError(output: "y", target: "t")),
                                  parameters: ParameterSelection(trainable: ["x"]), options: TrainerOptions(threads: 1, optimizationLevel: 0))
        // MSE against zeros: dY = 2·(1 − 0)/4 = 0.5 per output.
        try trainer.backward(["t": Tensor(shape: [1, 1, 2, 2], values: [Double](repeating: 0, count: 4))])
        let g = try XCTUnwrap(trainer.gradients()["x"]).array(of: Double.self)
        XCTAssertEqual(g, [0.5, 0.5, 0, 0.5, 0.5, 0, 0, 0, 0])
    }

    func testAveragePool() throws {
        for include in [0, 1] {
            let c = attr("count_include_pad", include)
            try check("AveragePool", [c, attr("kernel_shape", [2, 2]), attr("strides", [2, 2])])
            try check("AveragePool", [c, attr("kernel_shape", [3, 3]), attr("strides", [2, 2]), attr("pads", [1, 1, 1, 1])])
            try check("AveragePool", [c, attr("kernel_shape", [3, 3]), attr("strides", [2, 2]), attr("pads", [1, 0, 0, 1]), attr("ceil_mode", 1)],
                      shape: [2, 3, 6, 6])
            try check("AveragePool", [c, attr("kernel_shape", [2, 2]), attr("strides", [2, 2]), attr("ceil_mode", 1)])
            try check("AveragePool", [c, attr("kernel_shape", [3, 3]), attr("strides", [2, 2]), attr("auto_pad", "SAME_LOWER")])
            try check("AveragePool", [c, attr("kernel_shape", [2, 2]), attr("dilations", [2, 1]), attr("pads", [1, 1, 0, 0])])
            try check("AveragePool", [c, attr("kernel_shape", [3]), attr("pads", [1, 1])], shape: [2, 3, 7])
        }
    }

    func testGlobalPools() throws {
        try check("GlobalMaxPool", [])
        try check("GlobalMaxPool", [], shape: [2, 3, 7])
        try check("GlobalAveragePool", [])
    }
}
