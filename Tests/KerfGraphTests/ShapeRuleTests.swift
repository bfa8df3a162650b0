import KerfCore
import KerfGraph
import XCTest

/// One test per rule family: the shape (rank first, then dims) and dtype of each output.
final class ShapeRuleTests: XCTestCase {
    func testUnaryKeepShapeAndCastAndBoolOutputs() {
        let r = infer([op("Relu", ["x"], ["r"]), op("Gelu", ["r"], ["g"]), op("Clip", ["g"], ["c"]),
                       op("Cast", ["c"], ["i"], ["to": int(7)]), op("IsNaN", ["c"], ["nan"]), op("Not", ["nan"], ["n"]),
                       op("Dropout", ["c"], ["d", "mask"])],
                      inputs: [("x", ["N", 16])])
        for name in ["r", "g", "c", "d"] {
            XCTAssertEqual(r.shape(of: name), ["N", 16], name)
            XCTAssertEqual(r.dtype(of: name), .float, name)
        }
        XCTAssertEqual(r.dtype(of: "i"), .int64)
        XCTAssertEqual(r.shape(of: "i"), ["N", 16])
        XCTAssertEqual(r.dtype(of: "nan"), .bool)
        XCTAssertEqual(r.dtype(of: "n"), .bool)
        XCTAssertEqual(r.dtype(of: "mask"), .bool)
        XCTAssertEqual(r.shape(of: "mask"), ["N", 16])
        XCTAssertTrue(r.diagnostics.isEmpty, "\(r.diagnostics)")
    }

    func testBroadcastingKeepsSymbolsAndComparisonsGiveBool() {
        let r = infer([op("Add", ["a", "b"], ["sum"]), op("Less", ["a", "b"], ["less"]),
                       op("Where", ["less", "a", "c"], ["w"]), op("Sum", ["a", "b", "c"], ["s3"]),
                       op("Mul", ["a", "d"], ["nm"])],
                      inputs: [("a", ["N", 1, 8]), ("b", [4, 1]), ("c", [1]), ("d", ["M", 4, 8])])
        XCTAssertEqual(r.shape(of: "sum"), ["N", 4, 8])
        XCTAssertEqual(r.dtype(of: "less"), .bool)
        XCTAssertEqual(r.shape(of: "w"), ["N", 4, 8])
        XCTAssertEqual(r.dtype(of: "w"), .float)
        XCTAssertEqual(r.shape(of: "s3"), ["N", 4, 8])
        XCTAssertEqual(r.shape(of: "nm"), ["?", 4, 8], "N against M is unknown")
    }

    func testMatMulBatchedBroadcastAndVectors() {
        let r = infer([op("MatMul", ["x", "w"], ["y"]), op("MatMul", ["b", "c"], ["bc"]),
                       op("MatMul", ["v", "w"], ["vw"]), op("MatMul", ["x", "u"], ["xu"]),
                       op("MatMulInteger", ["x", "w"], ["yi"])],
                      inputs: [("x", ["N", 16]), ("w", [16, 8]), ("b", [2, 1, 3, 4]), ("c", [5, 4, 6]), ("v", [16]), ("u", [16])])
        XCTAssertEqual(r.shape(of: "y"), ["N", 8])
        XCTAssertEqual(r.shape(of: "bc"), [2, 5, 3, 6])
        XCTAssertEqual(r.shape(of: "vw"), [8])
        XCTAssertEqual(r.shape(of: "xu"), ["N"])
        XCTAssertEqual(r.dtype(of: "yi"), .int32)
    }

    func testGemmTransposes() {
        let r = infer([op("Gemm", ["a", "b", "c"], ["y"], ["transA": int(1), "transB": int(1)])],
                      inputs: [("a", [16, "N"]), ("b", [10, 16]), ("c", [10])])
        XCTAssertEqual(r.shape(of: "y"), ["N", 10])
    }

    func testConvPadsStridesDilationsGroupsAndAutoPad() {
        let r = infer([op("Conv", ["x", "w"], ["y"], ["pads": ints([1, 1, 1, 1]), "strides": ints([2, 2])]),
                       op("Conv", ["x", "dw"], ["z"], ["group": int(8), "dilations": ints([2, 2])]),
                       op("Conv", ["x", "w"], ["s"], ["auto_pad": str("SAME_UPPER"), "strides": ints([2, 2])]),
                       op("ConvTranspose", ["x", "tw"], ["t"], ["strides": ints([2, 2]), "pads": ints([1, 1, 1, 1]), "output_padding": ints([1, 1])])],
                      inputs: [("x", ["N", 8, 15, 15])],
                      initializers: [floats("w", [16, 8, 3, 3]), floats("dw", [8, 1, 3, 3]), floats("tw", [8, 4, 3, 3])])
        XCTAssertEqual(r.shape(of: "y"), ["N", 16, 8, 8])
        XCTAssertEqual(r.shape(of: "z"), ["N", 8, 11, 11])
        XCTAssertEqual(r.shape(of: "s"), ["N", 16, 8, 8])
        XCTAssertEqual(r.shape(of: "t"), ["N", 4, 30, 30])
    }

    func testRecurrentOutputsForBothLayouts() {
        let r = infer([op("LSTM", ["x", "w", "r"], ["y", "h", "c"], ["hidden_size": int(6), "direction": str("bidirectional")]),
                       op("GRU", ["xb", "gw", "gr"], ["yb", "hb"], ["layout": int(1)]),
                       op("RNN", ["x", "rw", "rr"], ["", "hr"], ["hidden_size": int(5)])],
                      inputs: [("x", ["T", "N", 3]), ("xb", ["N", "T", 3])],
                      initializers: [floats("w", [2, 24, 3]), floats("r", [2, 24, 6]), floats("gw", [1, 12, 3]), floats("gr", [1, 12, 4]),
                                     floats("rw", [1, 5, 3]), floats("rr", [1, 5, 5])])
        XCTAssertEqual(r.shape(of: "y"), ["T", 2, "N", 6])
        XCTAssertEqual(r.shape(of: "h"), [2, "N", 6])
        XCTAssertEqual(r.shape(of: "c"), [2, "N", 6])
        XCTAssertEqual(r.shape(of: "yb"), ["N", "T", 1, 4])
        XCTAssertEqual(r.shape(of: "hb"), ["N", 1, 4])
        XCTAssertEqual(r.shape(of: "hr"), [1, "N", 5])
    }

    func testPoolingCeilModeAndGlobalPooling() {
        let r = infer([op("MaxPool", ["x"], ["m", "idx"], ["kernel_shape": ints([3, 3]), "strides": ints([2, 2])]),
                       op("MaxPool", ["x"], ["c"], ["kernel_shape": ints([3, 3]), "strides": ints([2, 2]), "ceil_mode": int(1)]),
                       op("AveragePool", ["x"], ["a"], ["kernel_shape": ints([2, 2]), "strides": ints([2, 2])]),
                       op("GlobalAveragePool", ["x"], ["g"])],
                      inputs: [("x", ["N", 3, 112, 112])])
        XCTAssertEqual(r.shape(of: "m"), ["N", 3, 55, 55])
        XCTAssertEqual(r.dtype(of: "idx"), .int64)
        XCTAssertEqual(r.shape(of: "c"), ["N", 3, 56, 56])
        XCTAssertEqual(r.shape(of: "a"), ["N", 3, 56, 56])
        XCTAssertEqual(r.shape(of: "g"), ["N", 3, 1, 1])
    }

    func testNormalizationsAndSoftmax() {
        let r = infer([op("BatchNormalization", ["x", "s", "b", "m", "v"], ["bn"]),
                       op("LayerNormalization", ["x", "s"], ["ln", "mean", "inv"], ["axis": int(-2)]),
                       op("InstanceNormalization", ["x", "s", "b"], ["in"]), op("Softmax", ["x"], ["sm"])],
                      inputs: [("x", ["N", 4, 6, 6])],
                      initializers: ["s", "b", "m", "v"].map { floats($0, [4]) })
        for name in ["bn", "ln", "in", "sm"] { XCTAssertEqual(r.shape(of: name), ["N", 4, 6, 6], name) }
        XCTAssertEqual(r.shape(of: "mean"), ["N", 4, 1, 1])
    }

    func testReductionsByAttributeAndInputAndArgMaxTopK() {
        let r = infer([op("ReduceMean", ["x"], ["m"], ["axes": ints([-1])]),
                       op("ReduceSum", ["x", "axes"], ["s"], ["keepdims": int(0)]),
                       op("ReduceMax", ["x"], ["all"], ["keepdims": int(0)]),
                       op("ReduceSum", ["x", "empty"], ["noop"], ["noop_with_empty_axes": int(1)]),
                       op("ArgMax", ["x"], ["am"], ["axis": int(1), "keepdims": int(0)]),
                       op("TopK", ["x", "k"], ["tv", "ti"], ["axis": int(1)])],
                      inputs: [("x", ["N", 10, 4])],
                      initializers: [int64s("axes", [0, 2]), int64s("empty", []), int64s("k", [3])])
        XCTAssertEqual(r.shape(of: "m"), ["N", 10, 1])
        XCTAssertEqual(r.shape(of: "s"), [10])
        XCTAssertEqual(r.shape(of: "all"), [])
        XCTAssertEqual(r.shape(of: "noop"), ["N", 10, 4])
        XCTAssertEqual(r.shape(of: "am"), ["N", 4])
        XCTAssertEqual(r.dtype(of: "am"), .int64)
        XCTAssertEqual(r.shape(of: "tv"), ["N", 3, 4])
        XCTAssertEqual(r.dtype(of: "ti"), .int64)
    }

    func testReshapeFlattenTransposeSqueezeUnsqueeze() {
        let r = infer([op("Reshape", ["x", "shape"], ["r"]), op("Flatten", ["x"], ["f"]),
                       op("Flatten", ["x"], ["f0"], ["axis": int(0)]),
                       op("Transpose", ["x"], ["t"], ["perm": ints([0, 2, 3, 1])]),
                       op("Unsqueeze", ["x", "ax"], ["u"]), op("Squeeze", ["u", "ax"], ["sq"]),
                       op("Unsqueeze", ["x"], ["u11"], ["axes": ints([-1])])],
                      inputs: [("x", ["N", 16, 4, 4])],
                      initializers: [int64s("shape", [0, -1]), int64s("ax", [1])])
        XCTAssertEqual(r.shape(of: "r"), ["N", 256])
        XCTAssertEqual(r.shape(of: "f"), ["N", 256])
        XCTAssertEqual(r.shape(of: "f0"), [1, "?"], "N x 256 is not a known dim")
        XCTAssertEqual(r.shape(of: "t"), ["N", 4, 4, 16])
        XCTAssertEqual(r.shape(of: "u"), ["N", 1, 16, 4, 4])
        XCTAssertEqual(r.shape(of: "sq"), ["N", 16, 4, 4])
        XCTAssertEqual(r.shape(of: "u11"), ["N", 16, 4, 4, 1])
        let old = infer([op("Unsqueeze", ["x"], ["u"], ["axes": ints([0])])], inputs: [("x", [3])], opset: 11)
        XCTAssertEqual(old.shape(of: "u"), [1, 3])
    }

    func testConcatSplitSlicePadTileExpand() {
        let r = infer([op("Concat", ["a", "b"], ["c"], ["axis": int(1)]),
                       op("Split", ["c", "sizes"], ["s1", "s2"], ["axis": int(1)]),
                       op("Split", ["a"], ["e1", "e2"], ["axis": int(1)]),
                       op("Slice", ["a", "starts", "ends", "axes", "steps"], ["sl"]),
                       op("Pad", ["a", "pads"], ["p"]), op("Tile", ["a", "reps"], ["t"]),
                       op("Expand", ["one", "eshape"], ["ex"])],
                      inputs: [("a", ["N", 4, 10]), ("b", ["N", 2, 10]), ("one", [1, 10])],
                      initializers: [int64s("sizes", [5, 1]), int64s("starts", [-1, 1]), int64s("ends", [Int(Int64.min), 100]),
                                     int64s("axes", [1, 2]), int64s("steps", [-1, 3]), int64s("pads", [0, 1, 2, 0, 1, 3]),
                                     int64s("reps", [1, 2, 3]), int64s("eshape", [3, 1, 1])])
        XCTAssertEqual(r.shape(of: "c"), ["N", 6, 10])
        XCTAssertEqual(r.shape(of: "s1"), ["N", 5, 10])
        XCTAssertEqual(r.shape(of: "s2"), ["N", 1, 10])
        XCTAssertEqual(r.shape(of: "e1"), ["N", 2, 10])
        XCTAssertEqual(r.shape(of: "sl"), ["N", 4, 3])
        XCTAssertEqual(r.shape(of: "p"), ["N", 6, 15])
        XCTAssertEqual(r.shape(of: "t"), ["N", 8, 30])
        XCTAssertEqual(r.shape(of: "ex"), [3, 1, 10])
    }

    func testGatherGatherElementsOneHotNonZero() {
        let r = infer([op("Gather", ["table", "ids"], ["g"]), op("Gather", ["x", "i"], ["g1"], ["axis": int(1)]),
                       op("GatherElements", ["x", "ids"], ["ge"]), op("OneHot", ["ids", "depth", "vals"], ["oh"]),
                       op("NonZero", ["x"], ["nz"])],
                      inputs: [("x", ["N", 7]), ("ids", ["B", "S"])],
                      initializers: [floats("table", [100, 32]), int64s("i", [2], shape: []), int64s("depth", [5], shape: []),
                                     floats("vals", [2])])
        XCTAssertEqual(r.shape(of: "g"), ["B", "S", 32])
        XCTAssertEqual(r.shape(of: "g1"), ["N"])
        XCTAssertEqual(r.shape(of: "ge"), ["B", "S"])
        XCTAssertEqual(r.shape(of: "oh"), ["B", "S", 5])
        XCTAssertEqual(r.shape(of: "nz"), [2, "?"])
    }

    func testQuantizationDtypes() {
        let r = infer([op("QuantizeLinear", ["x", "scale", "zp"], ["q"]), op("DequantizeLinear", ["q", "scale", "zp"], ["dq"]),
                       op("DynamicQuantizeLinear", ["x"], ["y", "ys", "yz"]), op("QuantizeLinear", ["x", "scale"], ["q8"])],
                      inputs: [("x", ["N", 8])],
                      initializers: [floats("scale", []), Initializer(name: "zp", tensor: Tensor(shape: [], values: [Int8(0)]))])
        XCTAssertEqual(r.dtype(of: "q"), .int8)
        XCTAssertEqual(r.dtype(of: "q8"), .uint8)
        XCTAssertEqual(r.shape(of: "q"), ["N", 8])
        XCTAssertEqual(r.dtype(of: "dq"), .float)
        XCTAssertEqual(r.dtype(of: "y"), .uint8)
        XCTAssertEqual(r.shape(of: "ys"), [])
        XCTAssertEqual(r.dtype(of: "yz"), .uint8)
    }

    func testEinsumExplicitImplicitAndEllipsis() {
        let r = infer([op("Einsum", ["a", "b"], ["e"], ["equation": str("bij,bjk->bik")]),
                       op("Einsum", ["a", "b"], ["i"], ["equation": str("bij,bjk")]),
                       op("Einsum", ["a"], ["t"], ["equation": str("...ij->...ji")])],
                      inputs: [("a", ["B", 3, 4]), ("b", ["B", 4, 5])])
        XCTAssertEqual(r.shape(of: "e"), ["B", 3, 5])
        XCTAssertEqual(r.shape(of: "i"), [3, 5], "implicit output: letters seen once, sorted")
        XCTAssertEqual(r.shape(of: "t"), ["B", 4, 3])
    }

    func testResizeByScalesAndSizes() {
        let scales = Initializer(name: "scales", tensor: Tensor(shape: [4], values: [Float(1), 1, 2, 2]))
        let r = infer([op("Resize", ["x", "", "scales"], ["up"]), op("Resize", ["x", "", "", "sizes"], ["to"])],
                      inputs: [("x", ["N", 3, 8, 8])], initializers: [scales, int64s("sizes", [1, 3, 5, 5])])
        XCTAssertEqual(r.shape(of: "up"), ["N", 3, 16, 16])
        XCTAssertEqual(r.shape(of: "to"), [1, 3, 5, 5])
    }

    func testDeclaredValueInfoFillsWhatNoRuleGives() {
        let r = infer([op("FooBar", ["x"], ["y"]), op("Relu", ["y"], ["z"])],
                      inputs: [("x", ["N", 3])],
                      valueInfo: [ValueInfo(name: "y", type: .tensor(dtype: .float, shape: ["N", 5]))])
        XCTAssertEqual(r.shape(of: "y"), ["N", 5])
        XCTAssertEqual(r.shape(of: "z"), ["N", 5])
        let unknown = infer([op("FooBar", ["x"], ["y"])], inputs: [("x", ["N", 3])])
        XCTAssertEqual(unknown.type(of: "y"), .tensor(dtype: nil, shape: nil))
    }
}

final class GeneratorShapeRuleTests: XCTestCase {
    func testRandomGeneratorsAndSequenceLength() {
        let r = infer([op("RandomUniformLike", ["x"], ["u"], ["dtype": int(11)]), op("RandomNormal", [], ["n"], ["shape": ints([2, 3])]),
                       op("Bernoulli", ["x"], ["b"]), op("Multinomial", ["x"], ["m"], ["sample_size": int(4)]),
                       op("RandomUniform", [], ["bad"], ["shape": ints([-1])])],
                      inputs: [("x", ["N", 5])])
        XCTAssertEqual(r.shape(of: "u"), ["N", 5])
        XCTAssertEqual(r.dtype(of: "u"), .double)
        XCTAssertEqual(r.shape(of: "n"), [2, 3])
        XCTAssertEqual(r.dtype(of: "n"), .float)
        XCTAssertEqual(r.dtype(of: "b"), .float)
        XCTAssertEqual(r.shape(of: "m"), ["N", 4])
        XCTAssertEqual(r.dtype(of: "m"), .int32)
        XCTAssertNil(r.shape(of: "bad"))
        XCTAssertEqual(r.diagnostics.count, 1, "\(r.diagnostics)")
    }
}
