import XCTest
@testable import KerfKernels
#if canImport(Glibc)
import Glibc
#endif

final class FastMathTests: XCTestCase {
    func testFastExpIsWithinFourUlpOfLibm() {
        var x: Float = -87
        while x < 88.2 {
            let want = expf(x), got = fastExp(x)
            XCTAssertLessThanOrEqual(abs(got - want), 4 * want.ulp, "exp(\(x))")
            x += 0.0173
        }
        XCTAssertEqual(fastExp(-200), 0)
        XCTAssertEqual(fastExp(200), .infinity)
        XCTAssertTrue(fastExp(.nan).isNaN)
    }

    func testFastErfIsWithinItsBoundOfLibmInEveryPath() {
        let xs = stride(from: Float(-6), through: 6, by: 0.00071).map { $0 } + [1e-6, -1e-6, 1e-20, 3.8, 3.99, 4.01]
        var vector = [Float](repeating: 0, count: xs.count)
        erf(xs, &vector, count: xs.count)
        for (x, y) in zip(xs, vector) {
            let want = Glibc.erf(Double(x))
            // Absolute and relative: small arguments keep their relative precision.
            XCTAssertLessThanOrEqual(abs(Double(y) - want), 5e-7 * max(abs(want), 1e-30) + 1e-45, "erf(\(x))")
            XCTAssertLessThanOrEqual(abs(fastErf(x) - y), 4 * max(abs(y), 1).ulp, "scalar and vector erf(\(x))")
        }
        let specials: [Float] = [.infinity, -.infinity, .nan, 1e38, -1e38, 0, -0.0, 5e-39]
        for offset in 0..<16 {  // every lane position (the kernels run 8 or 16 at a time)
            var x = [Float](repeating: 0.5, count: 33)
            for (k, v) in specials.enumerated() { x[(offset + k) % 33] = v }
            var y = [Float](repeating: 0, count: 33)
            erf(x, &y, count: 33)
            for (v, e) in zip(x, y) {
                if v.isNaN { XCTAssertTrue(e.isNaN, "erf(nan) = \(e)") }
                else if abs(v) >= 4 { XCTAssertEqual(e, v > 0 ? 1 : -1, "erf(\(v))") }
                else if v == 0 { XCTAssertEqual(e, 0) }
                else if v == 0.5 { XCTAssertEqual(Double(e), 0.5204998778130465, accuracy: 2e-7) }
            }
        }
    }

    func testGeluMatchesTheErfDefinition() {
        let xs = stride(from: Float(-12), through: 12, by: 0.0131).map { $0 }
        var ys = [Float](repeating: 0, count: xs.count)
        gelu(xs, &ys, count: xs.count)
        for (x, y) in zip(xs, ys) {
            let want = 0.5 * Double(x) * erfc(-Double(x) / 2.0.squareRoot())
            // x/2 times erf's 5e-7, plus the rounding of the last multiply.
            let tolerance = 2.5e-7 * Double(abs(x)) + 2e-7 * abs(want) + 1e-9
            XCTAssertLessThanOrEqual(abs(Double(y) - want), tolerance, "gelu(\(x))")
        }
        // Every lane position (the kernels run 8 or 16 at a time) for the special values.
        let specials: [Float] = [.infinity, -.infinity, .nan, 1e38, -1e38, 0, -0.0, 30, -30, 5e-39]
        for offset in 0..<16 {
            var x = [Float](repeating: 1, count: 33)
            for (k, v) in specials.enumerated() { x[(offset + k) % 33] = v }
            var y = [Float](repeating: 0, count: 33)
            gelu(x, &y, count: 33)
            for (v, g) in zip(x, y) {
                if v.isNaN || v == -.infinity { XCTAssertTrue(g.isNaN || g == 0, "gelu(\(v)) = \(g)") }  // -inf * 0
                else if v == .infinity || v >= 30 { XCTAssertEqual(g, v, "gelu(\(v))") }
                else if v <= -30 { XCTAssertEqual(g, 0, "gelu(\(v))") }
                else if v == 1 { XCTAssertEqual(Double(g), 0.8413447460685429, accuracy: 2e-6) }
            }
        }
    }
    func testSiluMatchesItsDefinitionInEveryLane() {
        let xs = stride(from: Float(-100), through: 100, by: 0.0173).map { $0 }
        var ys = [Float](repeating: 0, count: xs.count)
        silu(xs, &ys, count: xs.count)
        for (x, y) in zip(xs, ys) {
            let want = Double(x) / (1 + exp(-Double(x)))
            XCTAssertLessThanOrEqual(abs(Double(y) - want), 1e-6 * abs(want) + 1e-30, "silu(\(x))")
        }
        for offset in 0..<16 {
            var x = [Float](repeating: 1, count: 33)
            for (k, v) in [Float.nan, 0, 30, -30, .infinity].enumerated() { x[(offset + k) % 33] = v }
            var y = [Float](repeating: 7, count: 33)
            silu(x, &y, count: 33)
            for (v, g) in zip(x, y) {
                if v.isNaN { XCTAssertTrue(g.isNaN, "silu(nan) = \(g)") }
                else if v == .infinity { XCTAssertEqual(g, v) }
                else { XCTAssertEqual(Double(g), Double(v) / (1 + exp(-Double(v))), accuracy: 1e-6 * max(1, abs(Double(v)))) }
            }
        }
    }
}
