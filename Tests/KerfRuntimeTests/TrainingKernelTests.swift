import Foundation
import KerfCore
@testable import KerfRuntime
import KerfTestSupport
import XCTest

/// The float gradient kernels (vectorized, split over threads in blocks) against the same
/// operators in double on the same values, at one and two threads, for sizes with vector
/// tails and sizes large enough to split.
final class TrainingKernelTests: XCTestCase {
    private let random = SeededGenerator(seed: 11)

    private func floats(_ shape: [Int], _ range: ClosedRange<Float>) -> Tensor {
        Tensor(shape: shape, values: random.floats(shape.reduce(1, *), in: range))
    }

    private func double(_ t: Tensor) -> Tensor { Tensor(shape: t.shape, values: t.array(of: Float.self).map(Double.init)) }

    /// `got` (float) within `tolerance`·(1 + |want|) of `want` (double), element by element.
    private func assertClose(_ got: Tensor, _ want: Tensor, _ tolerance: Double, _ what: String) {
        XCTAssertEqual(got.shape, want.shape, what)
        let g = got.array(of: Float.self), w = want.array(of: Double.self)
        XCTAssertEqual(g.count, w.count, what)
        var worst = 0.0
        for (a, b) in zip(g, w) { worst = max(worst, abs(Double(a) - b) / (1 + abs(b))) }
        XCTAssertLessThanOrEqual(worst, tolerance, what)
    }

    func testLayerNormalizationGradientInFloatMatchesDouble() throws {
        for (shape, axis) in [([3, 7], -1), ([5, 17], -1), ([300, 256], -1), ([40, 6, 40], 1)] {
            let x = floats(shape, -2...2), dY = floats(shape, -1...1)
            let n = shape[(axis < 0 ? shape.count + axis : axis)...].reduce(1, *)
            let scale = floats(Array(shape[(axis < 0 ? shape.count + axis : axis)...]), 0.5...1.5)
            XCTAssertEqual(scale.count, n)
            let want = try layerNormalizationGradient(dY: double(dY), x: double(x), scale: double(scale), axis: axis, epsilon: 1e-5)
            for threads in [1, 2] {
                let got = try layerNormalizationGradient(dY: dY, x: x, scale: scale, axis: axis, epsilon: 1e-5, threads: threads)
                XCTAssertEqual(got.count, 3)
                for (i, name) in ["dX", "dScale", "dBias"].enumerated() {
                    assertClose(got[i], want[i], 1e-4, "\(name) of \(shape) at \(threads) threads")
                }
            }
        }
    }

    func testSumToShapeInBlocksMatchesDouble() throws {
        // Row-vector sums (a bias gradient), sums into one element per row, and a middle axis.
        for (shape, target) in [([600, 130], [130]), ([3000, 40], [3000, 1]), ([40, 50, 60], [50, 1]), ([2, 3], [1, 3]), ([40, 50, 60], [40, 1, 60])] {
            let x = floats(shape, -1...1)
            let want = try sumToShape(double(x), shape: target)
            for threads in [1, 2] {
                assertClose(try sumToShape(x, shape: target, threads: threads), want, 1e-5, "\(shape) -> \(target) at \(threads) threads")
            }
        }
    }

    func testSoftmaxGradientRowsInFloatMatchDouble() throws {
        for log in [false, true] {
            for shape in [[3, 17], [64, 4, 64], [2, 5]] {
                var y = floats(shape, 0.01...1)
                if log { y = Tensor(shape: shape, values: y.array(of: Float.self).map { Foundation.log($0) }) }
                let dY = floats(shape, -1...1)
                let want = try softmaxGradient(dY: double(dY), y: double(y), axis: -1, log: log, coerced: false)
                for threads in [1, 2] {
                    let got = try softmaxGradient(dY: dY, y: y, axis: -1, log: log, coerced: false, threads: threads)
                    assertClose(got, want, 1e-5, "log \(log) \(shape) at \(threads) threads")
                }
            }
        }
    }

    func testGeluAndTanhGeluGradientsInFloatMatchDouble() throws {
        for kind in [ActivationDerivative.gelu, .geluTanh, .erf, .softplus] {
            for count in [13, 70_001] {
                let x = floats([count], -6...6), dY = floats([count], -1...1)
                let want = try activationGradient(kind, dY: double(dY), value: double(x), minimum: nil, maximum: nil)
                for threads in [1, 2] {
                    let got = try activationGradient(kind, dY: dY, value: x, minimum: nil, maximum: nil, threads: threads)
                    assertClose(got, want, 2e-6, "\(kind) of \(count) at \(threads) threads")
                }
            }
        }
    }
}
