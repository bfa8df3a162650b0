import XCTest
@testable import KerfCore
@testable import KerfKernels
@testable import KerfRuntime
import KerfTestSupport

final class KernelTests: XCTestCase {
    func testSgemmMatchesReferenceForEveryTransposeCombination() {
        let (m, n, k) = (37, 29, 53)
        let a = SeededGenerator(seed: 1).floats(m * k), b = SeededGenerator(seed: 2).floats(k * n)
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            var fast = SeededGenerator(seed: 3).floats(m * n), slow = fast
            let lda = ta ? m : k, ldb = tb ? k : n
            sgemm(transA: ta, transB: tb, m: m, n: n, k: k, alpha: 0.5, a: a, lda: lda, b: b, ldb: ldb, beta: 2, c: &fast, ldc: n)
            sgemmReference(transA: ta, transB: tb, m: m, n: n, k: k, alpha: 0.5, a: a, lda: lda, b: b, ldb: ldb, beta: 2, c: &slow, ldc: n)
            for i in 0..<(m * n) { XCTAssertEqual(fast[i], slow[i], accuracy: 1e-4, "transA \(ta) transB \(tb) at \(i)") }
        }
    }

    func testConvMatchesDirectDefinition() throws {
        // 2 images, 4 channels in 2 groups, 6 filters, 3x3 kernel, stride 2, pads 1, dilation 1.
        let x = Tensor(shape: [2, 4, 7, 6], values: SeededGenerator(seed: 4).floats(2 * 4 * 7 * 6))
        let w = Tensor(shape: [6, 2, 3, 3], values: SeededGenerator(seed: 5).floats(6 * 2 * 9))
        let b = Tensor(shape: [6], values: SeededGenerator(seed: 6).floats(6))
        let window = WindowAttributes(kernelShape: nil, strides: [2, 2], dilations: [1, 1], pads: [1, 1, 1, 1], autoPad: "NOTSET", ceilMode: false)
        let y = try conv(x, w, b, window: window, group: 2)
        XCTAssertEqual(y.shape, [2, 6, 4, 3])
        let xs = x.array(of: Float.self), ws = w.array(of: Float.self), bs = b.array(of: Float.self), ys = y.array(of: Float.self)
        for n in 0..<2 { for m in 0..<6 { for oy in 0..<4 { for ox in 0..<3 {
            var s = bs[m]
            let g = m / 3
            for c in 0..<2 { for ky in 0..<3 { for kx in 0..<3 {
                let iy = oy * 2 - 1 + ky, ix = ox * 2 - 1 + kx
                if iy < 0 || iy >= 7 || ix < 0 || ix >= 6 { continue }
                s += xs[((n * 4 + g * 2 + c) * 7 + iy) * 6 + ix] * ws[((m * 2 + c) * 3 + ky) * 3 + kx]
            } } }
            XCTAssertEqual(ys[((n * 6 + m) * 4 + oy) * 3 + ox], s, accuracy: 1e-4)
        } } } }
    }

    func testBroadcastingArithmetic() throws {
        let a = Tensor(shape: [2, 1, 3], values: [Float(1), 2, 3, 4, 5, 6])
        let b = Tensor(shape: [4, 1], values: [Float(10), 20, 30, 40])
        let y = try arithmetic(.add, a, b)
        XCTAssertEqual(y.shape, [2, 4, 3])
        XCTAssertEqual(Array(y.array(of: Float.self).prefix(6)), [11, 12, 13, 21, 22, 23])
        XCTAssertThrowsError(try arithmetic(.add, a, Tensor(shape: [2], values: [Float(1), 2])))
        let q = try arithmetic(.div, Tensor(shape: [2], values: [Int32(7), 5]), Tensor(shape: [2], values: [Int32(2), 0]))
        XCTAssertEqual(q.array(of: Int32.self), [3, 0], "integer division by zero gives 0, never traps")
    }

    func testCastWrapsIntegersAndSaturatesFloatsLikeC() throws {
        let wide = Tensor(shape: [4], values: [Int64(1) << 40 | 5, -1, Int64(Int32.max) + 1, 7])
        XCTAssertEqual(try cast(wide, to: .int32).array(of: Int32.self), [5, -1, Int32.min, 7])
        XCTAssertEqual(try cast(wide, to: .uint8).array(of: UInt8.self), [5, 255, 0, 7])
        XCTAssertEqual(try cast(wide, to: .float).array(of: Float.self), [Float(Int64(1) << 40 | 5), -1, 2147483648, 7])
        let floats = Tensor(shape: [6], values: [Float(2.9), -2.9, .nan, 1e20, -1e20, 0])
        XCTAssertEqual(try cast(floats, to: .int32).array(of: Int32.self), [2, -2, 0, Int32.max, Int32.min, 0])
        XCTAssertEqual(try cast(floats, to: .int8).array(of: Int8.self), [2, -2, 0, 127, -128, 0])
        XCTAssertEqual(try cast(floats, to: .bool).array(of: UInt8.self), [1, 1, 1, 1, 1, 0])
        XCTAssertEqual(try cast(floats, to: .double).array(of: Double.self).map(\.isNaN), [false, false, true, false, false, false])
        let flags = Tensor(shape: [3], values: [true, false, true])
        XCTAssertEqual(try cast(flags, to: .float).array(of: Float.self), [1, 0, 1])
        XCTAssertEqual(try cast(flags, to: .int64).array(of: Int64.self), [1, 0, 1])
        let odd = Tensor(dtype: .bool, shape: [3], storage: Tensor(shape: [3], values: [UInt8(2), 0, 255]).storage)  // a caller's bytes
        XCTAssertEqual(try cast(odd, to: .int8).array(of: Int8.self), [1, 0, 1])
        XCTAssertEqual(try cast(odd, to: .float).array(of: Float.self), [1, 0, 1])
        let half = try cast(Tensor(shape: [2], values: [Int32(3), -70000]), to: .float16)
        XCTAssertEqual(half.dtype, .float16)
        XCTAssertEqual(try half.convertedToFloat32().array(of: Float.self), [3, -.infinity])
    }

    /// Feeds given as pairs: a name twice, an unknown name or a missing input is an error, and
    /// a failed bind leaves the session as it was (an overridable initializer keeps its value).
    func testFeedPairsAreCheckedAndAFailedBindChangesNothing() throws {
        let g = Graph(nodes: [Node(name: "add", opType: "Add", inputs: ["x", "b"], outputs: ["y"])],
                      inputs: [ValueInfo(name: "x", type: .tensor(dtype: .float, shape: [.value(2)])),
                               ValueInfo(name: "b", type: .tensor(dtype: .float, shape: [.value(2)]))],
                      outputs: [ValueInfo(name: "y", type: nil)],
                      initializers: [Initializer(name: "b", tensor: Tensor(shape: [2], values: [Float(10), 20]))])
        let session = try Session(graph: g, opsets: [OpsetImport(domain: "", version: 17)])
        let x = Tensor(shape: [2], values: [Float(1), 2]), b = Tensor(shape: [2], values: [Float(-1), -2])
        XCTAssertThrowsError(try session.run(feeding: [("x", x), ("x", x)])) { XCTAssertTrue("\($0)".contains("fed twice")) }
        XCTAssertThrowsError(try session.run(feeding: [("b", b), ("z", x)])) { XCTAssertTrue("\($0)".contains("no input named 'z'")) }
        XCTAssertThrowsError(try session.run(feeding: [("b", b)])) { XCTAssertTrue("\($0)".contains("'x' was not fed")) }
        XCTAssertEqual(try session.run(feeding: [("x", x)])[0].array(of: Float.self), [11, 22])
        XCTAssertEqual(try session.run(feeding: [("b", b), ("x", x)])[0].array(of: Float.self), [0, 0])
        XCTAssertEqual(try session.run(["x": x])[0].array(of: Float.self), [11, 22])
    }

    /// Reshape reads a constant shape once, but a feed that replaces it (an overridable
    /// initializer) at every run.
    func testReshapeTakesAFedShapeOverItsInitializer() throws {
        let g = Graph(nodes: [Node(name: "r", opType: "Reshape", inputs: ["x", "s"], outputs: ["y"])],
                      inputs: [ValueInfo(name: "x", type: nil), ValueInfo(name: "s", type: nil)], outputs: [ValueInfo(name: "y", type: nil)],
                      initializers: [Initializer(name: "s", tensor: Tensor(shape: [2], values: [Int64(2), 3]))])
        let session = try Session(graph: g, opsets: [OpsetImport(domain: "", version: 17)])
        let x = Tensor(shape: [6], values: (0..<6).map(Float.init))
        XCTAssertEqual(try session.run(["x": x])[0].shape, [2, 3])
        XCTAssertEqual(try session.run(["x": x, "s": Tensor(shape: [2], values: [Int64(3), -1])])[0].shape, [3, 2])
        XCTAssertEqual(try session.run(["x": x])[0].shape, [2, 3])
    }

    func testReshapeTargetRules() throws {
        XCTAssertEqual(try reshapeTarget([0, -1], input: [2, 3, 4], allowZero: false), [2, 12])
        XCTAssertEqual(try reshapeTarget([0, 4], input: [0, 4], allowZero: true), [0, 4])
        XCTAssertThrowsError(try reshapeTarget([-1, -1], input: [2, 3], allowZero: false))
        XCTAssertThrowsError(try reshapeTarget([5], input: [2, 3], allowZero: false))
    }

    func testSessionRunsNodesOutOfFileOrderAndReportsUnknownOps() throws {
        let relu = Node(name: "r", opType: "Relu", inputs: ["t"], outputs: ["y"])
        let neg = Node(name: "n", opType: "Sub", inputs: ["z", "x"], outputs: ["t"])
        let graph = Graph(nodes: [relu, neg],
                          inputs: [ValueInfo(name: "x", type: .tensor(dtype: .float, shape: [.value(3)]))],
                          outputs: [ValueInfo(name: "y", type: nil)],
                          initializers: [Initializer(name: "z", tensor: Tensor(shape: [3], values: [Float(0), 0, 0]))])
        let session = try Session(graph: graph, opsets: [OpsetImport(domain: "", version: 17)])
        let y = try session.run(["x": Tensor(shape: [3], values: [Float(-1), 2, -3])])[0]
        XCTAssertEqual(y.array(of: Float.self), [1, 0, 3])

        let bad = Graph(nodes: [Node(name: "weird", opType: "FooBar", inputs: ["x"], outputs: ["y"])],
                        inputs: graph.inputs, outputs: graph.outputs)
        XCTAssertThrowsError(try Session(graph: bad, opsets: [OpsetImport(domain: "", version: 17)])) { error in
            XCTAssertEqual((error as? KerfError)?.status, 4)
            XCTAssertTrue("\(error)".contains("FooBar") && "\(error)".contains("weird"))
        }
    }

    /// Writing over the operand of the output's shape gives what a separate output gets.
    func testBroadcastBinaryInPlaceMatchesBroadcastBinary() {
        let shape = [2, 3, 5]
        let x = SeededGenerator(seed: 11).floats(30)
        for bShape in [[2, 3, 5], [1], [5], [3, 1], [2, 1, 5], [2, 3, 1]] {
            let b = SeededGenerator(seed: 12).floats(bShape.reduce(1, *))
            for left in [true, false] {
                var expected = [Float](repeating: 0, count: 30), inPlace = x
                if left {
                    broadcastBinary(x, shape, b, bShape, &expected, shape) { $0 - $1 }
                } else {
                    broadcastBinary(b, bShape, x, shape, &expected, shape) { $0 - $1 }
                }
                inPlace.withUnsafeMutableBufferPointer { broadcastBinaryInPlace($0.baseAddress!, shape, b, bShape, left: left) { $0 - $1 } }
                XCTAssertEqual(inPlace, expected, "b \(bShape) left \(left)")
            }
        }
    }
    /// Block copies and element runs give what indexing each output element by its broadcast
    /// strides gives, for every element size and for broadcast dims at every position.
    func testBroadcastCopyMatchesIndexingByStrides() {
        let outShape = [2, 3, 4, 5]
        let count = outShape.reduce(1, *)
        let shapes: [[Int]] = [[2, 3, 4, 5], [1], [5], [4, 1], [3, 1, 1], [2, 1, 4, 5], [1, 3, 1, 5], [2, 3, 4, 1],
                               [2, 1, 1, 1], [1, 1, 4, 1], [3, 4, 5], []]
        for elementSize in [1, 2, 4, 8, 3] {
            for shape in shapes {
                let input = (0..<(shape.reduce(1, *) * elementSize)).map { UInt8(truncatingIfNeeded: $0 * 7 + 1) }
                let strides = broadcastStrides(shape, to: outShape)
                var expected = [UInt8](repeating: 0, count: count * elementSize)
                for i in 0..<count {
                    var rest = i, offset = 0
                    for d in stride(from: outShape.count - 1, through: 0, by: -1) {
                        offset += rest % outShape[d] * strides[d]
                        rest /= outShape[d]
                    }
                    for b in 0..<elementSize { expected[i * elementSize + b] = input[offset * elementSize + b] }
                }
                var out = [UInt8](repeating: 0, count: count * elementSize)
                input.withUnsafeBytes { a in
                    out.withUnsafeMutableBytes { broadcastCopy(a.baseAddress!, shape, elementSize: elementSize, $0.baseAddress!, outShape) }
                }
                XCTAssertEqual(out, expected, "shape \(shape) element size \(elementSize)")
            }
        }
    }
}
