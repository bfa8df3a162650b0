import XCTest
@testable import KerfCore
@testable import KerfKernels
@testable import KerfRuntime
import KerfTestSupport

final class SparseGemmTests: XCTestCase {
    /// Deterministic values in [-1, 1]; a fraction `zeros` of them (at random places) set to 0.
    private func sparseFloats(_ n: Int, zeros: Double, seed: UInt64) -> [Float] {
        let random = SeededGenerator(seed: seed)
        return (0..<n).map { _ in
            let v = random.float(in: -1...1)
            return random.unit() < zeros ? 0 : v
        }
    }

    /// The product written out from the dense B, independent of SparseMatrix.
    private func denseProduct(m: Int, n: Int, k: Int, alpha: Float, a: [Float], lda: Int, b: [Float], transB: Bool,
                              beta: Float, c: [Float], ldc: Int) -> [Float] {
        var out = c
        for i in 0..<m {
            for j in 0..<n {
                var sum: Float = 0
                for p in 0..<k { sum += a[i * lda + p] * (transB ? b[j * k + p] : b[p * n + j]) }
                out[i * ldc + j] = alpha * sum + (beta == 0 ? 0 : beta * c[i * ldc + j])
            }
        }
        return out
    }

    func testSparseGemmMatchesDenseDefinition() {
        var seed: UInt64 = 10
        for zeros in [0.5, 0.7, 0.9, 0.99, 1] {
            for (k, n) in [(37, 29), (130, 67), (1, 5), (9, 1000)] {
                for m in [1, 3, 9, 32, 35] {
                    for transB in [false, true] {
                        seed += 1
                        let lda = k + 2, ldc = n + 1
                        let a = sparseFloats(m * lda, zeros: 0, seed: seed)
                        let b = sparseFloats(k * n, zeros: zeros, seed: seed + 100)
                        let c = sparseFloats(m * ldc, zeros: 0, seed: seed + 200)
                        let (alpha, beta): (Float, Float) = m % 2 == 1 ? (0.5, 2) : (1, 0)
                        let expected = denseProduct(m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, transB: transB,
                                                    beta: beta, c: c, ldc: ldc)
                        let sparse = SparseMatrix(b, rows: k, columns: n, transposed: transB, ld: transB ? k : n)
                        XCTAssertEqual(sparse.nonzeroCount, b.filter { $0 != 0 }.count)
                        for threads in [1, 2] {
                            var fast = c, slow = c
                            sparseGemm(m: m, alpha: alpha, a: a, lda: lda, b: sparse, beta: beta, c: &fast, ldc: ldc, threads: threads)
                            sparseGemmReference(m: m, alpha: alpha, a: a, lda: lda, b: sparse, beta: beta, c: &slow, ldc: ldc)
                            for i in 0..<expected.count {
                                XCTAssertEqual(fast[i], expected[i], accuracy: 1e-4, "zeros \(zeros) k \(k) n \(n) m \(m) transB \(transB) at \(i)")
                                XCTAssertEqual(slow[i], expected[i], accuracy: 1e-4, "reference, zeros \(zeros) at \(i)")
                            }
                        }
                    }
                }
            }
        }
    }

    func testWideRowIndicesAndEmptyColumns() {
        // K > 65536 needs 32-bit row indices; most columns are empty.
        let k = 70_000, n = 3
        var b = [Float](repeating: 0, count: k * n)
        b[69_999 * n + 0] = 2
        b[5 * n + 0] = -1
        b[66_000 * n + 2] = 3
        let sparse = SparseMatrix(b, rows: k, columns: n, transposed: false, ld: n)
        guard case .wide = sparse.rowIndex else { return XCTFail("K > 65536 must use wide indices") }
        let a = (0..<(2 * k)).map { Float($0 % 7) }
        var c = [Float](repeating: 9, count: 2 * n)
        sparseGemm(m: 2, alpha: 1, a: a, lda: k, b: sparse, beta: 0, c: &c, ldc: n, threads: 2)
        for i in 0..<2 {
            let row = i * k
            XCTAssertEqual(c[i * n + 0], 2 * a[row + 69_999] - a[row + 5])
            XCTAssertEqual(c[i * n + 1], 0)
            XCTAssertEqual(c[i * n + 2], 3 * a[row + 66_000])
        }
    }

    // MARK: Runtime

    /// Runs `graph`; with `forced` true, checks that the sparse kernel ran (`expectSparse`) or did not.
    private func run(_ graph: Graph, _ feeds: [String: Tensor], sparseKernels: Bool, forced: Bool? = nil,
                     expectSparse: Bool = true) throws -> Tensor {
        var options = SessionOptions(threads: 2, sparseKernels: sparseKernels)
        let probe = RuntimeProbe(forcedSparseChoice: forced)
        options.probe = probe
        let session = try Session(graph: graph, opsets: [OpsetImport(domain: "", version: 17)], options: options)
        let y = try session.run(feeds)[0]
        // A forced sparse run must really take the sparse kernel (not fall back to dense).
        if forced == true {
            XCTAssertEqual(probe.sparseProducts > 0, expectSparse, "the sparse kernel ran: expected \(expectSparse)")
        }
        if !sparseKernels { XCTAssertEqual(probe.sparseProducts, 0, "sparse kernels off") }
        return y
    }

    /// `x` and `y` agree within 1e-4, relative above 1.
    private func assertClose(_ x: Tensor, _ y: Tensor, _ message: String, file: StaticString = #filePath, line: UInt = #line) {
        KerfTestSupport.assertClose(x, y, absolute: 1e-4, relative: 1e-4, message, file: file, line: line)
    }

    func testMatMulWithSparseConstantMatchesDense() throws {
        // [2, 3, 40] x [40, 24] + bias, then Relu: the optimizer fuses bias and activation.
        let (k, n) = (40, 24)
        let w = Tensor(shape: [k, n], values: sparseFloats(k * n, zeros: 0.8, seed: 7))
        let bias = Tensor(shape: [n], values: sparseFloats(n, zeros: 0, seed: 8))
        let graph = Graph(
            nodes: [Node(name: "mm", opType: "MatMul", inputs: ["x", "w"], outputs: ["t"]),
                    Node(name: "add", opType: "Add", inputs: ["t", "b"], outputs: ["u"]),
                    Node(name: "relu", opType: "Relu", inputs: ["u"], outputs: ["y"])],
            inputs: [ValueInfo(name: "x", type: .tensor(dtype: .float, shape: nil))],
            outputs: [ValueInfo(name: "y", type: nil)],
            initializers: [Initializer(name: "w", tensor: w), Initializer(name: "b", tensor: bias)])
        for shape in [[1, k], [2, 3, k], [k]] {
            let x = Tensor(shape: shape, values: sparseFloats(shape.reduce(1, *), zeros: 0, seed: 9))
            let dense = try run(graph, ["x": x], sparseKernels: false)
            assertClose(try run(graph, ["x": x], sparseKernels: true, forced: true), dense, "forced sparse, x \(shape)")
            assertClose(try run(graph, ["x": x], sparseKernels: true), dense, "measured, x \(shape)")
        }
    }

    func testGemmWithSparseConstantMatchesDense() throws {
        let (m, k, n) = (5, 33, 18)
        for (transA, transB) in [(false, false), (false, true), (true, true)] {
            let wShape = transB ? [n, k] : [k, n]
            let w = Tensor(shape: wShape, values: sparseFloats(k * n, zeros: 0.9, seed: 11))
            let c = Tensor(shape: [1, n], values: sparseFloats(n, zeros: 0, seed: 12))
            let node = Node(name: "g", opType: "Gemm", inputs: ["x", "w", "c"], outputs: ["y"],
                            attributes: [Attribute(name: "transA", value: .int(transA ? 1 : 0)),
                                         Attribute(name: "transB", value: .int(transB ? 1 : 0)),
                                         Attribute(name: "alpha", value: .float(0.75)), Attribute(name: "beta", value: .float(1.5))])
            let graph = Graph(nodes: [node], inputs: [ValueInfo(name: "x", type: .tensor(dtype: .float, shape: nil))],
                              outputs: [ValueInfo(name: "y", type: nil)],
                              initializers: [Initializer(name: "w", tensor: w), Initializer(name: "c", tensor: c)])
            let xShape = transA ? [k, m] : [m, k]
            let x = Tensor(shape: xShape, values: sparseFloats(m * k, zeros: 0, seed: 13))
            let dense = try run(graph, ["x": x], sparseKernels: false)
            assertClose(try run(graph, ["x": x], sparseKernels: true, forced: true), dense, "transA \(transA) transB \(transB)")
        }
    }

    func testFedWeightOverridingTheInitializerIsUsed() throws {
        // IR >= 4: a feed may replace an initializer; the sparse copy of the old value must not be used.
        let (k, n) = (16, 8)
        let w = Tensor(shape: [k, n], values: sparseFloats(k * n, zeros: 0.9, seed: 21))
        let graph = Graph(nodes: [Node(name: "mm", opType: "MatMul", inputs: ["x", "w"], outputs: ["y"])],
                          inputs: [ValueInfo(name: "x", type: .tensor(dtype: .float, shape: nil)),
                                   ValueInfo(name: "w", type: .tensor(dtype: .float, shape: nil))],
                          outputs: [ValueInfo(name: "y", type: nil)],
                          initializers: [Initializer(name: "w", tensor: w)])
        let x = Tensor(shape: [1, k], values: [Float](repeating: 1, count: k))
        let other = Tensor(shape: [k, n], values: [Float](repeating: 1, count: k * n))
        let y = try run(graph, ["x": x, "w": other], sparseKernels: true, forced: true, expectSparse: false)
        XCTAssertEqual(y.array(of: Float.self), [Float](repeating: Float(k), count: n))
    }

    func testWeightsWithFewZerosStayDense() {
        let w = Tensor(shape: [10, 10], values: sparseFloats(100, zeros: 0.1, seed: 31))
        XCTAssertNil(SparseWeights(w, transposed: false, threads: 1, probe: nil))
        let s = Tensor(shape: [10, 10], values: sparseFloats(100, zeros: 0.9, seed: 32))
        XCTAssertNotNil(SparseWeights(s, transposed: false, threads: 1, probe: nil))
    }
}
