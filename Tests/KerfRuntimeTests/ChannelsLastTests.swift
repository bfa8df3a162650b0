import XCTest
@testable import KerfCore
@testable import KerfKernels
@testable import KerfRuntime
import KerfTestSupport

/// The channels-last rewrite (Optimizer/ChannelsLastLayout.swift) and its NHWC kernels.
final class ChannelsLastTests: XCTestCase {
    private let opsets = [OpsetImport(domain: "", version: 17)]

    private func values(_ n: Int, _ seed: Int) -> [Float] { (0..<n).map { Float(($0 &* 7919 &+ seed &* 104729) % 97) / 48 - 1 } }

    /// One image of `channels` planes [h, w] as NHWC.
    private func channelsLast(_ planes: [Float], channels: Int, positions: Int) -> [Float] {
        var out = [Float](repeating: 0, count: planes.count)
        for c in 0..<channels { for p in 0..<positions { out[p * channels + c] = planes[c * positions + p] } }
        return out
    }

    /// Few rows into contiguous dst rows (an RGB image made channels-last) go four columns at a
    /// time with stores that spill into the next column: the same as the reference, with no
    /// add, a separate add, and the add being dst itself.
    func testTransposeOfFewRowsMatchesTheReference() {
        for rows in 1...5 {
            for columns in [1, 4, 5, 8, 9, 13, 50] {
                let src = (0..<(rows * columns)).map { Float($0) * 0.5 - 3 }
                let add = (0..<(rows * columns)).map { Float($0 % 7) - 2 }
                for mode in ["none", "separate", "in place"] {
                    var got = mode == "in place" ? add : [Float](repeating: .nan, count: rows * columns)
                    var want = [Float](repeating: 0, count: rows * columns)
                    src.withUnsafeBufferPointer { s in
                        add.withUnsafeBufferPointer { a in
                            let adding = mode == "none" ? nil : a.baseAddress
                            transposeReference(s.baseAddress!, rows: rows, columns: columns, lds: columns, adding: adding, &want, ldd: rows)
                            got.withUnsafeMutableBufferPointer { g in
                                transpose(s.baseAddress!, rows: rows, columns: columns, lds: columns,
                                          adding: mode == "in place" ? UnsafePointer(g.baseAddress) : adding, g.baseAddress!, ldd: rows)
                            }
                        }
                    }
                    XCTAssertEqual(got, want, "rows \(rows) columns \(columns) add \(mode)")
                }
            }
        }
    }

    func testPoolingKernelsMatchThePlaneKernelsBitForBit() {
        // (h, w, kernel, stride, dilation, pad, extra output rows/columns as ceil_mode makes)
        let cases: [(Int, Int, Int, Int, Int, Int, Int)] = [
            (112, 20, 3, 2, 1, 1, 0), (7, 9, 3, 1, 1, 1, 0), (8, 8, 2, 2, 1, 0, 1), (10, 13, 3, 2, 2, 2, 0),
            (5, 5, 5, 1, 1, 2, 0), (4, 6, 3, 3, 1, 1, 1), (1, 1, 3, 1, 1, 1, 0), (9, 4, 2, 1, 3, 0, 0),
        ]
        for channels in [1, 5, 16] {
            for (h, w, k, s, d, p, extra) in cases {
                let span = (k - 1) * d + 1
                let oh = (h + 2 * p - span) / s + 1 + extra, ow = (w + 2 * p - span) / s + 1 + extra
                let g = WindowGeometry(inputSize: [h, w], kernel: [k, k], strides: [s, s], dilations: [d, d], padsBegin: [p, p],
                                       outputSize: [oh, ow])
                let padsEnd = [(oh - 1) * s + span - h - p, (ow - 1) * s + span - w - p]
                var planes = values(channels * h * w, channels + k)
                for i in stride(from: 2, to: planes.count, by: 13) { planes[i] = .nan }
                let x = channelsLast(planes, channels: channels, positions: h * w)
                let label = "C\(channels) \(h)x\(w) k\(k) s\(s) d\(d) p\(p) +\(extra)"
                var expected = [Float](repeating: 0, count: channels * oh * ow)
                for c in 0..<channels {
                    planes.withUnsafeBufferPointer { src in
                        expected.withUnsafeMutableBufferPointer { dst in
                            maxPoolPlane2DFloat(src.baseAddress! + c * h * w, dst.baseAddress! + c * oh * ow, geometry: g)
                        }
                    }
                }
                var actual = [Float](repeating: 1, count: expected.count)
                maxPoolChannelsLast(x, &actual, channels: channels, geometry: g, rows: 0..<oh, lowest: -Float.infinity)
                XCTAssertEqual(actual.map(\.bitPattern), channelsLast(expected, channels: channels, positions: oh * ow).map(\.bitPattern),
                               "max " + label)
                // Bytes (int8 models): against the generic plane kernel.
                let bytes = planes.map { $0.isNaN ? Int8(7) : Int8(($0 * 100).rounded()) }
                var byteExpected = [Int8](repeating: 0, count: channels * oh * ow)
                for c in 0..<channels {
                    bytes.withUnsafeBufferPointer { src in
                        byteExpected.withUnsafeMutableBufferPointer { dst in
                            maxPoolPlane2D(src.baseAddress! + c * h * w, dst.baseAddress! + c * oh * ow, geometry: g, lowest: Int8.min, indices: nil)
                        }
                    }
                }
                var byteActual = [Int8](repeating: 1, count: byteExpected.count)
                var byteImage = [Int8](repeating: 0, count: bytes.count)
                for c in 0..<channels { for p in 0..<(h * w) { byteImage[p * channels + c] = bytes[c * h * w + p] } }
                maxPoolChannelsLast(byteImage, &byteActual, channels: channels, geometry: g, rows: 0..<oh, lowest: Int8.min)
                var byteWanted = [Int8](repeating: 0, count: byteExpected.count)
                for c in 0..<channels { for p in 0..<(oh * ow) { byteWanted[p * channels + c] = byteExpected[c * oh * ow + p] } }
                XCTAssertEqual(byteActual, byteWanted, "max int8 " + label)
                for includePad in [false, true] {
                    for c in 0..<channels {
                        planes.withUnsafeBufferPointer { src in
                            expected.withUnsafeMutableBufferPointer { dst in
                                averagePoolPlane2D(src.baseAddress! + c * h * w, dst.baseAddress! + c * oh * ow, geometry: g,
                                                   padsEnd: padsEnd, countIncludePad: includePad)
                            }
                        }
                    }
                    var sums = [Float](repeating: 0, count: channels)
                    // Two calls over halves of the rows: a range starting inside the image.
                    averagePoolChannelsLast(x, &actual, channels: channels, geometry: g, padsEnd: padsEnd, countIncludePad: includePad,
                                            rows: 0..<(oh / 2), sums: &sums)
                    averagePoolChannelsLast(x, &actual, channels: channels, geometry: g, padsEnd: padsEnd, countIncludePad: includePad,
                                            rows: (oh / 2)..<oh, sums: &sums)
                    XCTAssertEqual(actual.map(\.bitPattern), channelsLast(expected, channels: channels, positions: oh * ow).map(\.bitPattern),
                                   "average include_pad \(includePad) " + label)
                }
            }
        }
    }

    func testGlobalAverageSumsInPositionOrder() {
        let channels = 3, positions = 49
        let planes = values(channels * positions, 3)
        var y = [Float](repeating: 0, count: channels)
        globalAveragePoolChannelsLast(channelsLast(planes, channels: channels, positions: positions), &y, positions: positions, channels: channels)
        for c in 0..<channels {
            var s: Float = 0
            for p in 0..<positions { s += planes[c * positions + p] }
            XCTAssertEqual(y[c].bitPattern, (s / Float(positions)).bitPattern)
        }
    }

    /// x -> Conv 3x3 -> Relu -> BatchNormalization -> MaxPool -> Conv 1x1 (+ residual of the pool, + Relu: fused) -> [Concat with the
    /// pool on channels] -> Sigmoid -> AveragePool -> GlobalAveragePool -> Flatten -> y, plus the
    /// first Conv's output as a second graph output.
    private func network(concat: Bool) -> Graph {
        let c = 3, m = 8
        let inits = [Initializer(name: "W1", tensor: Tensor(shape: [m, c, 3, 3], values: values(m * c * 9, 1))),
                     Initializer(name: "b1", tensor: Tensor(shape: [m], values: values(m, 2))),
                     Initializer(name: "W2", tensor: Tensor(shape: [m, m, 1, 1], values: values(m * m, 3))),
                     Initializer(name: "b2", tensor: Tensor(shape: [m], values: values(m, 4))),
                     Initializer(name: "gamma", tensor: Tensor(shape: [m], values: values(m, 5).map { $0 + 1.5 })),
                     Initializer(name: "beta", tensor: Tensor(shape: [m], values: values(m, 6))),
                     Initializer(name: "mean", tensor: Tensor(shape: [m], values: values(m, 7))),
                     Initializer(name: "var", tensor: Tensor(shape: [m], values: values(m, 8).map { $0 + 1.2 }))]
        func node(_ op: String, _ inputs: [String], _ output: String, _ attributes: [Attribute] = []) -> Node {
            Node(name: output + "_node", opType: op, inputs: inputs, outputs: [output], attributes: attributes)
        }
        var nodes = [node("Conv", ["x", "W1", "b1"], "c1", [Attribute(name: "pads", value: .ints([1, 1, 1, 1]))]),
                     node("Relu", ["c1"], "r1"),
                     node("BatchNormalization", ["r1", "gamma", "beta", "mean", "var"], "n1"),
                     node("MaxPool", ["n1"], "p1", [Attribute(name: "kernel_shape", value: .ints([3, 3])),
                                                     Attribute(name: "strides", value: .ints([2, 2])),
                                                     Attribute(name: "pads", value: .ints([1, 1, 1, 1]))]),
                     node("Conv", ["p1", "W2", "b2"], "c2"),
                     node("Add", ["c2", "p1"], "s2"),
                     node("Relu", ["s2"], "s2r")]
        var last = "s2r"
        if concat {
            nodes.append(node("Concat", ["s2r", "p1"], "cat", [Attribute(name: "axis", value: .int(-3))]))
            last = "cat"
        }
        nodes += [node("Sigmoid", [last], "sg"),
                  node("AveragePool", ["sg"], "ap", [Attribute(name: "kernel_shape", value: .ints([2, 2])),
                                                    Attribute(name: "ceil_mode", value: .int(1))]),
                  node("GlobalAveragePool", ["ap"], "gap"),
                  node("Flatten", ["gap"], "y")]
        return Graph(nodes: nodes, inputs: [ValueInfo(name: "x", type: .tensor(dtype: .float, shape: [.symbol("N"), .value(c), .value(11), .value(9)]))],
                     outputs: [ValueInfo(name: "y", type: nil), ValueInfo(name: "c1", type: nil)], initializers: inits)
    }

    func testAConvNetworkRunsChannelsLastBetweenOneTransposeInAndOneOutPerReader() throws {
        guard OneDnnEngine.available else { throw XCTSkip("oneDNN has no engine here") }
        for concat in [false, true] {
            let g = network(concat: concat)
            let optimized = try GraphOptimizer.optimize(g, opsets: opsets, options: SessionOptions())
            let ops = optimized.nodes.map(\.opType)
            // In: x. Out: the Flatten's input and the graph output c1.
            XCTAssertEqual(ops.filter { $0 == "Transpose" }.count, 3, "\(ops)")
            XCTAssertEqual(ops.filter { $0 == ChannelsLast.conv }.count, 2, "\(ops)")
            for op in [ChannelsLast.maxPool, ChannelsLast.averagePool, ChannelsLast.globalAveragePool, ChannelsLast.batchNormalization] { XCTAssertTrue(ops.contains(op), "\(ops)") }
            XCTAssertFalse(ops.contains("Conv") || ops.contains("MaxPool") || ops.contains("Add"), "\(ops)")
            for batch in [1, 3] {
                let x = Tensor(shape: [batch, 3, 11, 9], values: values(batch * 297, batch))
                for threads in [1, 2] {
                    let plain = try Session(graph: g, opsets: opsets, options: SessionOptions(threads: threads, optimizationLevel: 0)).run(["x": x])
                    let fast = try Session(graph: g, opsets: opsets, options: SessionOptions(threads: threads, optimizationLevel: 1)).run(["x": x])
                    XCTAssertEqual(plain.count, 2)
                    for a in plain { XCTAssertGreaterThan(Set(a.array(of: Float.self)).count, 4, "the outputs are not degenerate") }
                    assertClose(fast, plain, absolute: 1e-5, "concat \(concat) batch \(batch) threads \(threads)")
                }
            }
        }
    }

    func testAResidualReadByNothingElseIsWrittenOverWithTheSameResult() throws {
        // c1 = Conv(x); y = Relu(Conv(x) + c1): c1's last reader is the second Conv, which
        // writes its output over c1 (and reads c1 as the residual where it lies).
        guard OneDnnEngine.available else { throw XCTSkip("oneDNN has no engine here") }
        let inits = [Initializer(name: "W1", tensor: Tensor(shape: [6, 3, 3, 3], values: values(162, 1))),
                     Initializer(name: "W2", tensor: Tensor(shape: [6, 3, 3, 3], values: values(162, 2))),
                     Initializer(name: "b2", tensor: Tensor(shape: [6], values: values(6, 3)))]
        let pads = [Attribute(name: "pads", value: .ints([1, 1, 1, 1]))]
        let nodes = [Node(name: "c1", opType: "Conv", inputs: ["x", "W1"], outputs: ["c1"], attributes: pads),
                     Node(name: "c2", opType: "Conv", inputs: ["x", "W2", "b2"], outputs: ["c2"], attributes: pads),
                     Node(name: "add", opType: "Add", inputs: ["c2", "c1"], outputs: ["s"]),
                     Node(name: "relu", opType: "Relu", inputs: ["s"], outputs: ["y"])]
        let g = Graph(nodes: nodes, inputs: [ValueInfo(name: "x", type: nil)], outputs: [ValueInfo(name: "y", type: nil)], initializers: inits)
        let optimized = try GraphOptimizer.optimize(g, opsets: opsets, options: SessionOptions())
        XCTAssertEqual(optimized.nodes.map(\.opType), ["Transpose", ChannelsLast.conv, ChannelsLast.conv, "Transpose"])
        for batch in [1, 2] {
            let x = Tensor(shape: [batch, 3, 7, 5], values: values(batch * 105, 9))
            let plain = try Session(graph: g, opsets: opsets, options: SessionOptions(threads: 1, optimizationLevel: 0)).run(["x": x])[0]
            let session = try Session(graph: g, opsets: opsets, options: SessionOptions(threads: 1, optimizationLevel: 1))
            for _ in 0..<2 {  // the second run reuses nothing of the first
                let fast = try session.run(["x": x])[0]
                let u = plain.array(of: Float.self)
                XCTAssertTrue(u.contains(0) && u.contains { $0 > 0 })
                assertClose(fast, plain, absolute: 1e-5, "batch \(batch)")
            }
        }
    }

    func testAResidualOfUnknownRankKeepsTheConvChannelsFirst() throws {
        // Conv + Add(skip) with skip a graph input [4, 1, 1]: fused as a residual, which has no
        // NHWC twin, so the Conv stays as it is; with a twin-less 1x1 Conv nothing changes either.
        let inits = [Initializer(name: "W", tensor: Tensor(shape: [4, 3, 3, 3], values: values(108, 1))),
                     Initializer(name: "V", tensor: Tensor(shape: [4, 3, 1, 1], values: values(12, 2)))]
        let nodes = [Node(name: "conv", opType: "Conv", inputs: ["x", "W"], outputs: ["c"]),
                     Node(name: "add", opType: "Add", inputs: ["c", "skip"], outputs: ["y"]),
                     Node(name: "pw", opType: "Conv", inputs: ["x", "V"], outputs: ["z"])]
        let g = Graph(nodes: nodes, inputs: [ValueInfo(name: "x", type: nil), ValueInfo(name: "skip", type: nil)],
                      outputs: [ValueInfo(name: "y", type: nil), ValueInfo(name: "z", type: nil)], initializers: inits)
        let optimized = try GraphOptimizer.optimize(g, opsets: opsets, options: SessionOptions())
        XCTAssertEqual(optimized.nodes.map(\.opType), ["Conv", "Conv"])
    }

    func testAWrongInputShapeIsStillAClearConvError() throws {
        guard OneDnnEngine.available else { throw XCTSkip("oneDNN has no engine here") }
        let g = network(concat: false)
        g.inputs = [ValueInfo(name: "x", type: nil)]  // no declared shape: the Conv itself sees the wrong channel count
        let session = try Session(graph: g, opsets: opsets, options: SessionOptions(threads: 1, optimizationLevel: 1))
        XCTAssertThrowsError(try session.run(["x": Tensor(shape: [1, 4, 11, 9], values: values(396, 1))])) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("c1_node") && text.contains("does not fit"), text)
        }
    }
}
