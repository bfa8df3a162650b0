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

    func testGeluMatchesTheErfDefinitionInRelativeTerms() {
        let xs = stride(from: Float(-12), through: 12, by: 0.0131).map { $0 }
        var ys = [Float](repeating: 0, count: xs.count)
        gelu(xs, &ys, count: xs.count)
        for (x, y) in zip(xs, ys) {
            let want = 0.5 * Double(x) * erfc(-Double(x) / 2.0.squareRoot())
            // The float32 rounding of x^2 inside the exponent adds about x^2 * 2e-7 relative error.
            let tolerance = 2e-6 + Double(x * x) * 2e-7
            XCTAssertLessThanOrEqual(abs(Double(y) - want), tolerance * abs(want), "gelu(\(x))")
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
}
