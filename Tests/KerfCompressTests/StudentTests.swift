import KerfCompress
import KerfCore
import KerfGraph
import KerfRuntime
import KerfTestSupport
import XCTest

/// Students from a teacher: the repeated layers of an exported encoder found by their names,
/// layers removed so the stream skips them (outputs checked against a model built without
/// them), and the refusals.
final class StudentTests: XCTestCase {
    /// input [N, 8] → /embed → x0; layer i (i < count): x_{i+1} = Relu(x_i + (x_i · W_i) · c_i),
    /// c_i an unnamed Constant inside the layer; then /head/MatMul → logits (unless `head` is
    /// false: the last layer's output is the graph output).
    private func encoder(layers: [Int], head: Bool = true, weights: [Int: [Float]]? = nil) -> (model: Model, weights: [Int: [Float]]) {
        let b = GraphBuilder(seed: 5)
        var x = b.node("MatMul", ["input", b.constant("embed.weight", [8, 8])], name: "/embed/MatMul")
        var used: [Int: [Float]] = [:]
        for i in layers {
            let w = weights?[i] ?? b.random(64)
            used[i] = w
            let h = b.node("MatMul", [x, b.constant("layers.\(i).fc.weight", [8, 8], w)], name: "/layers.\(i)/fc/MatMul")
            b.nodes.append(Node(name: "", opType: "Constant", inputs: [], outputs: ["c\(i)"],
                                attributes: [Attribute(name: "value", value: .tensor(Tensor(scalar: Float(0.5))))]))
            let scaled = b.node("Mul", [h, "c\(i)"], name: "/layers.\(i)/Mul")
            let sum = b.node("Add", [x, scaled], name: "/layers.\(i)/Add")
            x = b.node("Relu", [sum], name: "/layers.\(i)/act/Relu")
        }
        var output = x
        if head { output = b.node("MatMul", [x, b.constant("head.weight", [8, 3])], name: "/head/MatMul") }
        let graph = Graph(nodes: b.nodes, inputs: [ValueInfo(name: "input", type: .tensor(dtype: .float, shape: [.symbol("N"), .value(8)]))],
                          outputs: [ValueInfo(name: output, type: nil)], initializers: b.initializers)
        return (Model(graph: graph, opsetImports: [OpsetImport(domain: "", version: 17)]), used)
    }

    private func run(_ model: Model, _ x: Tensor) throws -> [Float] {
        try Session(model: model, options: SessionOptions(threads: 1)).run(["input": x])[0].array(of: Float.self)
    }

    func testLayersAreFoundByNameWithTheirUnnamedConstants() throws {
        let (model, _) = encoder(layers: [0, 1, 2, 3])
        let layers = try model.graph.repeatedLayers()
        XCTAssertEqual(layers.map(\.index), [0, 1, 2, 3])
        XCTAssertEqual(layers.map(\.nodes.count), [5, 5, 5, 5], "MatMul, Constant, Mul, Add, Relu")
        XCTAssertEqual(layers[0].input, "/embed/MatMul.out")
        XCTAssertEqual(layers[2].input, layers[1].output)
        XCTAssertEqual(layers.map(\.parameters), [64, 64, 64, 64])
    }

    func testDroppingEveryOtherLayerComputesTheModelWithoutThem() throws {
        let (teacher, weights) = encoder(layers: [0, 1, 2, 3])
        let student = Model(graph: teacher.graph.copy(), opsetImports: teacher.opsetImports)
        let report = try makeStudent(student, options: StudentOptions(dropLayers: .everyOther))
        XCTAssertEqual(report.layers.map(\.dropped), [false, true, false, true])
        XCTAssertEqual(report.parametersBefore - report.parametersAfter, 128)
        XCTAssertLessThan(report.bytesAfter, report.bytesBefore)
        XCTAssertFalse(student.graph.initializers.contains { $0.name.hasPrefix("layers.1") || $0.name.hasPrefix("layers.3") })
        let (expected, _) = encoder(layers: [0, 2], weights: weights)
        let head = try XCTUnwrap(expected.graph.initializers.firstIndex { $0.name == "head.weight" })
        expected.graph.initializers[head] = try XCTUnwrap(teacher.graph.initializer(named: "head.weight"))
        let x = Tensor(shape: [5, 8], values: SeededGenerator(seed: 9).floats(40))
        let got = try run(student, x), want = try run(expected, x)
        XCTAssertEqual(got.count, 15)
        XCTAssertEqual(got, want)
        XCTAssertNotEqual(got, try run(teacher, x))
    }

    func testDroppingTheLastLayerKeepsTheGraphOutputName() throws {
        let (teacher, weights) = encoder(layers: [0, 1, 2], head: false)
        let student = Model(graph: teacher.graph.copy(), opsetImports: teacher.opsetImports)
        _ = try makeStudent(student, options: StudentOptions(dropLayers: .indices([1, 2])))
        XCTAssertEqual(student.graph.outputs.map(\.name), teacher.graph.outputs.map(\.name))
        let (expected, _) = encoder(layers: [0], head: false, weights: weights)
        let x = Tensor(shape: [2, 8], values: SeededGenerator(seed: 3).floats(16))
        XCTAssertEqual(try run(student, x), try run(expected, x))
    }

    func testRefusalsLeaveTheModelUnchanged() throws {
        let (teacher, _) = encoder(layers: [0, 1])
        let before = try teacher.serialized()
        XCTAssertThrowsError(try makeStudent(teacher, options: StudentOptions(dropLayers: .indices([5])))) {
            XCTAssertTrue("\($0)".contains("no layer 5"), "\($0)")
        }
        XCTAssertThrowsError(try makeStudent(teacher, options: StudentOptions(dropLayers: .indices([0, 1])))) {
            XCTAssertTrue("\($0)".contains("every layer"), "\($0)")
        }
        XCTAssertThrowsError(try makeStudent(teacher, options: StudentOptions(dropLayers: .none, narrow: 1.5)))
        XCTAssertEqual(try teacher.serialized(), before)
        // A model whose names number no layers.
        let plain = Model(graph: Graph(nodes: [Node(name: "relu", opType: "Relu", inputs: ["x"], outputs: ["y"])],
                                       inputs: [ValueInfo(name: "x", type: .tensor(dtype: .float, shape: [.value(2)]))],
                                       outputs: [ValueInfo(name: "y", type: nil)]))
        XCTAssertThrowsError(try plain.graph.repeatedLayers()) { XCTAssertTrue("\($0)".contains("no repeated layers"), "\($0)") }
        // A layer whose intermediate value is read after it is not one block on a stream.
        let (leaky, _) = encoder(layers: [0, 1])
        leaky.graph.nodes.append(Node(name: "/head/Peek", opType: "Identity", inputs: ["/layers.0/Mul.out"], outputs: ["peek"]))
        leaky.graph.outputs.append(ValueInfo(name: "peek", type: nil))
        XCTAssertThrowsError(try leaky.graph.repeatedLayers()) { XCTAssertTrue("\($0)".contains("layer 0 is not one block"), "\($0)") }
    }
}
