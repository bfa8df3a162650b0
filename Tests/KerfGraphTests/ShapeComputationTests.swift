import KerfCore
import KerfGraph
import XCTest

/// Shapes computed inside the graph, as PyTorch exports them, resolve through known values.
final class ShapeComputationTests: XCTestCase {
    func testShapeGatherConcatReshapeKeepsTheSymbolicBatch() {
        let r = infer([op("Shape", ["x"], ["s"]), op("Gather", ["s", "zero"], ["n"], ["axis": int(0)]),
                       op("Unsqueeze", ["n", "ax0"], ["n1"]), op("Concat", ["n1", "tail"], ["target"], ["axis": int(0)]),
                       op("Reshape", ["x", "target"], ["y"]), op("Shape", ["x"], ["hw"], ["start": int(-2)])],
                      inputs: [("x", ["N", 8, 4, 4])],
                      initializers: [int64s("zero", [0], shape: []), int64s("ax0", [0]), int64s("tail", [4, -1])])
        XCTAssertEqual(r.shape(of: "s"), [4])
        XCTAssertEqual(r.values["s"]?.elements, ["N", 8, 4, 4])
        XCTAssertEqual(r.shape(of: "n"), [])
        XCTAssertEqual(r.values["target"]?.elements, ["N", 4, -1])
        XCTAssertEqual(r.shape(of: "y"), ["N", 4, 32])
        XCTAssertEqual(r.values["hw"]?.integers, [4, 4])
        XCTAssertTrue(r.diagnostics.isEmpty, "\(r.diagnostics)")
    }

    func testArithmeticOnShapesAndTorchExpandPattern() {
        // heads = Div(Gather(Shape(x), 2), 4); torch's expand: Where(Equal(shape, -1), ones, shape).
        let r = infer([op("Shape", ["x"], ["s"]), op("Gather", ["s", "two"], ["c"]), op("Div", ["c", "four"], ["per"]),
                       op("Unsqueeze", ["per", "ax0"], ["per1"]), op("Concat", ["minus1", "per1"], ["target"], ["axis": int(0)]),
                       op("Equal", ["target", "minus1x2"], ["isneg"]), op("Where", ["isneg", "ones", "target"], ["fixed"]),
                       op("Expand", ["b", "fixed"], ["e"])],
                      inputs: [("x", ["N", 3, 64]), ("b", [1])],
                      initializers: [int64s("two", [2], shape: []), int64s("four", [4], shape: []), int64s("ax0", [0]),
                                     int64s("minus1", [-1]), int64s("minus1x2", [-1, -1]), int64s("ones", [1, 1])])
        XCTAssertEqual(r.values["per"]?.integers, [16])
        XCTAssertEqual(r.values["fixed"]?.integers, [1, 16])
        XCTAssertEqual(r.shape(of: "e"), [1, 16])
    }

    func testConstantConstantOfShapeAndRange() {
        let shape = Tensor(shape: [2], values: [Int64(3), 5])
        let r = infer([op("Constant", [], ["shape"], ["value": .tensor(shape)]), op("ConstantOfShape", ["shape"], ["zeros"]),
                       op("Constant", [], ["start"], ["value_int": int(2)]), op("Range", ["start", "limit", "delta"], ["rg"]),
                       op("Range", ["limit", "start", "neg"], ["down"]), op("Size", ["zeros"], ["size"])],
                      inputs: [], initializers: [int64s("limit", [11], shape: []), int64s("delta", [3], shape: []),
                                                 int64s("neg", [-4], shape: [])])
        XCTAssertEqual(r.shape(of: "zeros"), [3, 5])
        XCTAssertEqual(r.dtype(of: "zeros"), .float)
        XCTAssertEqual(r.shape(of: "rg"), [3])
        XCTAssertEqual(r.values["rg"]?.integers, [2, 5, 8])
        XCTAssertEqual(r.values["down"]?.integers, [11, 7, 3])
        XCTAssertEqual(r.values["size"]?.integers, [15])
    }

    func testSliceOfAShapeAndSplitOfAShape() {
        let r = infer([op("Shape", ["x"], ["s"]), op("Slice", ["s", "st", "en"], ["lead"]),
                       op("Split", ["s"], ["s01", "s23"], ["axis": int(0)]), op("ConstantOfShape", ["lead"], ["z"])],
                      inputs: [("x", ["B", "S", 4, 8])], initializers: [int64s("st", [0]), int64s("en", [-2])])
        XCTAssertEqual(r.values["lead"]?.elements, ["B", "S"])
        XCTAssertEqual(r.values["s23"]?.integers, [4, 8])
        XCTAssertEqual(r.shape(of: "z"), ["B", "S"])
    }

    func testInitializersListedAsInputsAreConstantOnlyWhenAsked() {
        let g = Graph(nodes: [op("ConstantOfShape", ["shape"], ["z"])],
                      inputs: [ValueInfo(name: "shape", type: .tensor(dtype: .int64, shape: [2]))],
                      initializers: [int64s("shape", [4, 5])])
        XCTAssertEqual(g.inferTypes(opset: 9).shape(of: "z"), ["?", "?"], "a feed may replace the initializer")
        XCTAssertEqual(g.inferTypes(opset: 9, initializersAreConstant: true).shape(of: "z"), [4, 5])
        let old = Model(graph: g, irVersion: 3, opsetImports: [OpsetImport(domain: "", version: 9)])
        XCTAssertEqual(old.inferTypes().shape(of: "z"), [4, 5])
    }
}
