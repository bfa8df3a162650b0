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
    }
}
