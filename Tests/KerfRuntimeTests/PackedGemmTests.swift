import XCTest
@testable import KerfCore
@testable import KerfKernels
@testable import KerfRuntime
import KerfTestSupport

final class PackedGemmTests: XCTestCase {
    func testSmallProductMatchesReference() {
        var seed: UInt64 = 100
        // Blocks of four rows and sixteen columns, and every kind of tail.
        for (m, k, n) in [(1, 1, 1), (1, 64, 64), (1, 64, 10), (3, 17, 33), (2, 5, 7), (4, 100, 9), (32, 64, 64), (9, 31, 40), (7, 3, 16)] {
            for withBias in [false, true] {
                seed += 1
                let random = SeededGenerator(seed: seed)
                let a = random.floats(m * k), w = random.floats(k * n), bias = random.floats(n)
                var expected = [Float](repeating: 0, count: m * n), actual = [Float](repeating: .nan, count: m * n)
                sgemmReference(transA: false, transB: false, m: m, n: n, k: k, alpha: 1, a: a, lda: k, b: w, ldb: n, beta: 0,
                               c: &expected, ldc: n)
                if withBias { for i in 0..<m { for j in 0..<n { expected[i * n + j] += bias[j] } } }
                bias.withUnsafeBufferPointer { b in
                    smallProduct(m: m, k: k, n: n, a: a, w: w, bias: withBias ? b.baseAddress! : nil, c: &actual)
                }
                assertClose(actual, expected, absolute: 1e-4 * Double(k), "\(m)x\(k)x\(n) bias \(withBias)")
            }
        }
    }

    func testSmallProductFlushesSubnormalsAndRestoresTheCallersMode() {
        let tiny: Float = 1e-39  // subnormal
        var c = [Float](repeating: .nan, count: 2)
        // c = [tiny * 2 + 1 * 0, tiny * 1 + 1 * 1e-38]: both subnormal in IEEE arithmetic.
        smallProduct(m: 1, k: 2, n: 2, a: [tiny, 1], w: [2, 1, 0, 1e-38], bias: nil, c: &c)
        XCTAssertEqual(c, int8GemmAccelerated ? [0, 0] : [2 * tiny, tiny + 1e-38])
        // The caller's arithmetic still produces subnormals afterwards (a product the compiler
        // cannot fold: made by a function it may not inline, of a value read at run time).
        XCTAssertEqual(product(tiny, Float(CommandLine.arguments.count > 0 ? 0.5 : 0.25)).isSubnormal, true)
    }

    @inline(never)
    private func product(_ a: Float, _ b: Float) -> Float { a * b }

    func testPackedGemmMatchesReference() throws {
        var seed: UInt64 = 1
        for (k, n) in [(1, 1), (5, 3), (17, 33), (64, 64), (100, 130), (256, 1000), (1000, 17)] {
            for transposed in [false, true] {
                for withBias in [false, true] {
                    seed += 1
                    let ldw = (transposed ? k : n) + (seed % 2 == 0 ? 0 : 3)
                    let w = SeededGenerator(seed: seed).floats((transposed ? n : k) * ldw)
                    let bias = SeededGenerator(seed: seed + 7).floats(n)
                    let packed = try XCTUnwrap(w.withUnsafeBufferPointer { wp in
                        bias.withUnsafeBufferPointer { bp in
                            PackedGemm(k: k, n: n, w: wp.baseAddress!, ldw: ldw, transposed: transposed, bias: withBias ? bp.baseAddress! : nil)
                        }
                    }, "k \(k) n \(n)")
                    for m in [1, 2, 7, 32, 33, 129] {
                        let a = SeededGenerator(seed: seed + UInt64(m)).floats(m * k)
                        var c = [Float](repeating: .nan, count: m * n)
                        var expected = [Float](repeating: 0, count: m * n)
                        XCTAssertTrue(packed.multiply(m: m, a: a, c: &c), "k \(k) n \(n) m \(m)")
                        sgemmReference(transA: false, transB: transposed, m: m, n: n, k: k, alpha: 1, a: a, lda: k,
                                       b: w, ldb: ldw, beta: 0, c: &expected, ldc: n)
                        for i in 0..<m * n {
                            let want = expected[i] + (withBias ? bias[i % n] : 0)
                            XCTAssertEqual(c[i], want, accuracy: 1e-4 * max(1, abs(want)),
                                           "k \(k) n \(n) m \(m) transposed \(transposed) bias \(withBias) at \(i)")
                        }
                    }
                }
            }
        }
    }

    /// The same packed weights serve many row counts in any order (one primitive per count).
    func testPackedGemmRowCountsInterleave() throws {
        let (k, n) = (48, 80)
        let w = SeededGenerator(seed: 99).floats(k * n)
        let packed = try XCTUnwrap(w.withUnsafeBufferPointer { PackedGemm(k: k, n: n, w: $0.baseAddress!, ldw: n, transposed: false, bias: nil) })
        for m in [3, 1, 3, 64, 1, 64, 5] {
            let a = SeededGenerator(seed: UInt64(m)).floats(m * k)
            var c = [Float](repeating: 0, count: m * n), expected = c
            XCTAssertTrue(packed.multiply(m: m, a: a, c: &c))
            sgemmReference(transA: false, transB: false, m: m, n: n, k: k, alpha: 1, a: a, lda: k, b: w, ldb: n, beta: 0, c: &expected, ldc: n)
            for i in 0..<m * n { XCTAssertEqual(c[i], expected[i], accuracy: 1e-4, "m \(m) at \(i)") }
        }
    }

    /// Column blocks and row tiles on several threads give the product of the whole matrix.
    func testPackedGemmTilesMatchReference() throws {
        var seed: UInt64 = 500
        for (k, n) in [(3, 1), (33, 65), (64, 200), (130, 1000)] {
            for transposed in [false, true] {
                seed += 1
                let ldw = transposed ? k : n
                let w = SeededGenerator(seed: seed).floats(k * n), bias = SeededGenerator(seed: seed + 1).floats(n)
                for threads in [1, 2, 3] {
                    let tiles = try XCTUnwrap(w.withUnsafeBufferPointer { wp in
                        bias.withUnsafeBufferPointer { bp in
                            PackedGemmTiles(k: k, n: n, w: wp.baseAddress!, ldw: ldw, transposed: transposed, bias: bp.baseAddress!, threads: threads)
                        }
                    })
                    for m in [1, 5, 128, 129, 300] {
                        let a = SeededGenerator(seed: seed + UInt64(m)).floats(m * k)
                        var c = [Float](repeating: .nan, count: m * n), expected = [Float](repeating: 0, count: m * n)
                        XCTAssertTrue(tiles.multiply(m: m, a: a, c: &c))
                        sgemmReference(transA: false, transB: transposed, m: m, n: n, k: k, alpha: 1, a: a, lda: k,
                                       b: w, ldb: ldw, beta: 0, c: &expected, ldc: n)
                        for i in 0..<m * n {
                            let want = expected[i] + bias[i % n]
                            XCTAssertEqual(c[i], want, accuracy: 1e-4 * max(1, abs(want)),
                                           "k \(k) n \(n) m \(m) threads \(threads) transposed \(transposed) at \(i)")
                        }
                    }
                }
            }
        }
    }

    /// A view of columns of a packed W computes those columns of the product without a copy;
    /// columns that do not start on a block of the layout (64 on AVX-512, 1 on AVX2) give no view.
    func testPackedGemmViewsMatchReference() throws {
        let (k, n) = (70, 300)
        let w = SeededGenerator(seed: 77).floats(k * n), bias = SeededGenerator(seed: 78).floats(n)
        let whole = try XCTUnwrap(w.withUnsafeBufferPointer { wp in
            bias.withUnsafeBufferPointer { PackedGemm(k: k, n: n, w: wp.baseAddress!, ldw: n, transposed: false, bias: $0.baseAddress!) }
        })
        let block = whole.columnBlock
        XCTAssertTrue([1, 8, 16, 32, 64].contains(block), "column block \(block)")
        XCTAssertNil(whole.view(columns: 0, count: 301))
        XCTAssertNil(whole.view(columns: 64, count: 0))
        if block > 1 {
            XCTAssertNil(whole.view(columns: 1, count: 64))
            XCTAssertNil(whole.view(columns: 0, count: block + 1))
        }
        var ranges = [(0, 64), (64, 128), (256, 44), (0, 300)]
        if block == 1 { ranges += [(1, 64), (7, 293)] }
        for (c0, count) in ranges {
            let view = try XCTUnwrap(whole.view(columns: c0, count: count), "columns \(c0) + \(count)")
            for m in [1, 33] {
                let a = SeededGenerator(seed: UInt64(m)).floats(m * k)
                var c = [Float](repeating: .nan, count: m * count), expected = [Float](repeating: 0, count: m * n)
                XCTAssertTrue(view.multiply(m: m, a: a, c: &c))
                sgemmReference(transA: false, transB: false, m: m, n: n, k: k, alpha: 1, a: a, lda: k, b: w, ldb: n, beta: 0,
                               c: &expected, ldc: n)
                for i in 0..<m {
                    for j in 0..<count {
                        let want = expected[i * n + c0 + j] + bias[c0 + j]
                        XCTAssertEqual(c[i * count + j], want, accuracy: 1e-4 * max(1, abs(want)), "columns \(c0) m \(m) at \(i), \(j)")
                    }
                }
            }
        }
    }
}
