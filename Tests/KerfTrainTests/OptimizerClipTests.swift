import KerfCore
import KerfTestSupport
import KerfTrain
import XCTest

final class OptimizerClipTests: XCTestCase {
    /// clipGradientNorm over arrays: the norm and the clipped arrays.
    func clip(_ gradients: [[Float]], maxNorm: Double, normType: Double = 2, errorIfNonfinite: Bool = false,
              threads: Int = 1) throws -> (Double, [[Float]]) {
        let buffers = gradients.map { g -> UnsafeMutableBufferPointer<Float> in
            let b = UnsafeMutableBufferPointer<Float>.allocate(capacity: g.count)
            _ = b.initialize(from: g)
            return b
        }
        defer { buffers.forEach { $0.deallocate() } }
        let norm = try clipGradientNorm(buffers, maxNorm: maxNorm, normType: normType, errorIfNonfinite: errorIfNonfinite, threads: threads)
        return (norm, buffers.map { Array($0) })
    }

    func testScalesByMaxNormOverTotalNorm() throws {
        let (norm, clipped) = try clip([[3, 4], [12]], maxNorm: 6.5)
        XCTAssertEqual(norm, 13)
        // torch 2.13: [1.49999988, 1.99999988], [5.99999952]
        let coefficient = Float(6.5) / (Float(13) + Float(1e-6))
        XCTAssertEqual(clipped, [[3 * coefficient, 4 * coefficient], [12 * coefficient]])
        XCTAssertEqual(clipped, [[1.49999988, 1.99999988], [5.99999952]])
    }

    func testBelowMaxNormLeavesGradientsUnchanged() throws {
        let (norm, clipped) = try clip([[3, 4], [12]], maxNorm: 100)
        XCTAssertEqual(norm, 13)
        XCTAssertEqual(clipped, [[3, 4], [12]])
    }

    func testInfinityAndOneNorms() throws {
        let (inf, clippedInf) = try clip([[1, -7], [2, 0.5]], maxNorm: 3.5, normType: .infinity)
        XCTAssertEqual(inf, 7)
        let c = Float(3.5) / (Float(7) + Float(1e-6))
        XCTAssertEqual(clippedInf, [[c, -7 * c], [2 * c, 0.5 * c]])
        let (one, _) = try clip([[1, -7], [2, 0.5]], maxNorm: 100, normType: 1)
        XCTAssertEqual(one, 10.5)
    }

    func testNoGradientsGiveZero() throws {
        XCTAssertEqual(try clipGradientNorm([], maxNorm: 1), 0)
        XCTAssertEqual(try clip([[]], maxNorm: 1).0, 0)
    }

    func testNonFiniteNorm() throws {
        let (norm, clipped) = try clip([[1, .nan]], maxNorm: 1)
        XCTAssertTrue(norm.isNaN)
        XCTAssertTrue(clipped[0].allSatisfy(\.isNaN))  // as torch without error_if_nonfinite
        assertInvalidArgument(try clip([[1, .infinity]], maxNorm: 1, errorIfNonfinite: true))
        XCTAssertTrue(try clip([[1, .nan]], maxNorm: 1, normType: .infinity).0.isNaN)
    }

    func testInvalidOptionsThrow() {
        assertInvalidArgument(try clip([[1]], maxNorm: -1))
        assertInvalidArgument(try clip([[1]], maxNorm: .nan))
        assertInvalidArgument(try clip([[1]], maxNorm: 1, normType: 0))
        assertInvalidArgument(try clip([[1]], maxNorm: 1, normType: -.infinity))
    }

    func testLargeBuffersDoNotDependOnThreads() throws {
        let generator = SeededGenerator(seed: 5)
        let gradients = [generator.floats(300_001), generator.floats(70_000), generator.floats(5)]
        let one = try clip(gradients, maxNorm: 1, threads: 1), two = try clip(gradients, maxNorm: 1, threads: 2)
        XCTAssertEqual(one.0, two.0)
        XCTAssertEqual(one.1, two.1)
        let exact = gradients.joined().reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
        XCTAssertEqual(one.0, exact, accuracy: exact * 1e-7)
    }
}
