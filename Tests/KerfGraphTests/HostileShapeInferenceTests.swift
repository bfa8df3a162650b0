import KerfCore
import KerfGraph
import XCTest

/// Odd graphs give unknown types and diagnostics, never a trap.
final class HostileShapeInferenceTests: XCTestCase {
    func testOutOfRangeAxesGiveUnknownAndADiagnostic() {
        let r = infer([op("Softmax", ["x"], ["ok"]), op("Concat", ["x", "x"], ["c"], ["axis": int(5)]),
                       op("ArgMax", ["x"], ["a"], ["axis": int(-3)]), op("Unsqueeze", ["x", "big"], ["u"]),
                       op("Gather", ["x", "i"], ["g"], ["axis": int(Int(Int64.min))]),
                       op("Transpose", ["x"], ["t"], ["perm": ints([0, 0])]), op("Flatten", ["x"], ["f"], ["axis": int(9)]),
                       op("Split", ["x"], ["p", "q"], ["axis": int(Int(Int64.max))])],
                      inputs: [("x", ["N", 4])], initializers: [int64s("big", [Int(Int64.max)]), int64s("i", [0])])
        for name in ["c", "a", "u", "g", "t", "f", "p"] { XCTAssertNil(r.shape(of: name), name) }
        XCTAssertEqual(r.shape(of: "ok"), ["N", 4])
        XCTAssertGreaterThanOrEqual(r.diagnostics.count, 7, "\(r.diagnostics)")
    }

    func testRankMismatchesAndConflictingDims() {
        let r = infer([op("MatMul", ["a", "b"], ["m"]), op("Add", ["a", "c"], ["s"]), op("Gemm", ["a", "c"], ["g"]),
                       op("Conv", ["a", "b"], ["conv"]), op("Concat", ["a", "c"], ["cat"], ["axis": int(0)]),
                       op("Reshape", ["a", "bad"], ["r"]), op("MatMul", ["scalar", "a"], ["ms"])],
                      inputs: [("a", [3, 4]), ("b", [5, 6]), ("c", [2, 3, 7]), ("scalar", [])],
                      initializers: [int64s("bad", [-1, -1])])
        for name in ["m", "s", "g", "cat", "r", "ms"] { XCTAssertNil(r.shape(of: name), name) }
        XCTAssertEqual(r.dtype(of: "m"), .float, "the dtype is still known")
        XCTAssertFalse(r.diagnostics.isEmpty)
    }

    func testHugeDimsOverflowToUnknown() {
        let huge = Int(Int64.max / 2)
        let h = Dim.value(huge)
        let r = infer([op("Flatten", ["x"], ["f"], ["axis": int(2)]), op("Tile", ["x", "reps"], ["t"]), op("Size", ["x"], ["n"]),
                       op("Pad", ["x", "pads"], ["p"]), op("Range", ["lo", "hi", "one"], ["rg"]),
                       op("ConstantOfShape", ["hugeShape"], ["z"]),
                       op("Conv", ["img", "w"], ["conv"], ["strides": ints([huge, 1]), "pads": ints([huge, 0, huge, 0])]),
                       op("Slice", ["x", "lo", "hi"], ["sl"])],
                      inputs: [("x", [h, h, 1]), ("img", [1, 1, h, 3])],
                      initializers: [int64s("reps", [huge, 4, 1]), int64s("pads", [huge, 0, 0, huge, 0, 0]),
                                     int64s("lo", [Int(Int64.min)]), int64s("hi", [Int(Int64.max)]), int64s("one", [1]),
                                     int64s("hugeShape", [huge, huge, huge]), floats("w", [1, 1, 1, 1])])
        XCTAssertEqual(r.shape(of: "f"), ["?", 1])
        XCTAssertEqual(r.shape(of: "t"), ["?", "?", 1])
        XCTAssertNil(r.values["n"]?.integers)
        XCTAssertNil(r.shape(of: "p"))
        XCTAssertEqual(r.shape(of: "rg"), ["?"])
        XCTAssertEqual(r.shape(of: "z"), [h, h, h])
        XCTAssertNil(r.values["z"])
        XCTAssertEqual(r.shape(of: "conv")?.count, 4)
        XCTAssertEqual(r.shape(of: "sl"), [h, h, 1])
    }

    func testCyclesMissingInputsAndUnknownOps() {
        let g = Graph(nodes: [op("Relu", ["b"], ["a"]), op("Relu", ["a"], ["b"]), op("Relu", ["nowhere"], ["c"]),
                              op("Custom", ["c"], ["d"]), Node(name: "q", opType: "Relu", domain: "com.example", inputs: ["c"], outputs: ["e"])],
                      outputs: [ValueInfo(name: "b", type: .tensor(dtype: .float, shape: [2]))])
        let r = g.inferTypes(opset: 17)
        XCTAssertEqual(r.shape(of: "b"), [2], "a node on a cycle keeps its declaration")
        XCTAssertNil(r.shape(of: "a"))
        XCTAssertEqual(r.type(of: "c"), .tensor(dtype: nil, shape: nil))
        XCTAssertEqual(r.type(of: "e"), .tensor(dtype: nil, shape: nil))
        XCTAssertEqual(r.diagnostics.count, 1, "\(r.diagnostics)")
    }

    func testMalformedAttributesAndValues() {
        let r = infer([op("Cast", ["x"], ["c"], ["to": int(9999)]), op("Conv", ["x4", "w"], ["conv"], ["strides": ints([0, 1])]),
                       op("MaxPool", ["x4"], ["mp"], ["kernel_shape": ints([3])]), op("Einsum", ["x"], ["e"], ["equation": str("a...b...->")]),
                       op("Einsum", ["x"], ["e2"], ["equation": str("ij,jk->ik")]), op("Reshape", ["x", "zeros"], ["r"]),
                       op("Slice", ["x", "lo", "lo", "ax", "zero"], ["s"]), op("TopK", ["x", "k"], ["tv", "ti"])],
                      inputs: [("x", [2, 3]), ("x4", [1, 1, 5, 5])],
                      initializers: [floats("w", [1, 1, 3, 3]), int64s("zeros", [0, 0, 0]), int64s("lo", [0]), int64s("ax", [0]),
                                     int64s("zero", [0]), int64s("k", [9])])
        XCTAssertNil(r.dtype(of: "c"))
        XCTAssertEqual(r.shape(of: "conv"), [1, 1, "?", "?"])
        XCTAssertEqual(r.shape(of: "mp"), [1, 1, "?", "?"])
        XCTAssertNil(r.shape(of: "e2"))
        XCTAssertNil(r.shape(of: "r"))
        XCTAssertNil(r.shape(of: "s"))
        XCTAssertEqual(r.shape(of: "tv"), [2, "?"])
        XCTAssertGreaterThanOrEqual(r.diagnostics.count, 6, "\(r.diagnostics)")
    }
}
