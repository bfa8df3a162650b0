import XCTest
@testable import KerfKernels
import KerfTestSupport

final class SoftmaxTests: XCTestCase {
    /// Contiguous rows (the vector kernel) and strided rows (the scalar loop) against the
    /// definition in Double, for row lengths around the eight-lane width.
    func testSoftmaxMatchesTheDefinition() {
        let random = SeededGenerator(seed: 5)
        for n in [1, 2, 7, 8, 9, 15, 16, 17, 31, 128, 1000] {
            for (outer, inner) in [(3, 1), (2, 3)] {
                let x = random.floats(outer * n * inner, in: -10...10)
                var y = [Float](repeating: .nan, count: x.count)
                softmax(x, &y, outer: outer, n: n, inner: inner, log: false)
                for o in 0..<outer {
                    for i in 0..<inner {
                        let at = (0..<n).map { (o * n + $0) * inner + i }
                        let m = at.map { Double(x[$0]) }.max()!
                        let sum = at.map { exp(Double(x[$0]) - m) }.reduce(0, +)
                        for p in at {
                            let want = exp(Double(x[p]) - m) / sum
                            XCTAssertEqual(Double(y[p]), want, accuracy: 1e-5 * want + 1e-12, "n \(n) outer \(outer) inner \(inner) at \(p)")
                        }
                    }
                }
            }
        }
    }
}
