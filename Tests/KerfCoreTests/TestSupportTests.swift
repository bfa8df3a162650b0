import XCTest
import KerfCore
@testable import KerfTestSupport

/// The shared test helpers fail where they must: a comparison that cannot fail would make every
/// test built on it vacuous.
final class TestSupportTests: XCTestCase {
    func testClosenessChecksCountsBeforeValues() {
        XCTAssertEqual(closeness([Float](), [1, 2], absolute: 1, relative: 0), "assertClose: 0 elements, expected 2")
        XCTAssertEqual(closeness([Float(1), 2], [1], absolute: 1, relative: 0), "assertClose: 2 elements, expected 1")
        XCTAssertEqual(closeness([Float](), [], absolute: 1, relative: 0), "assertClose: nothing to compare")
        XCTAssertNil(closeness([Float(1), 2], [1, 2], absolute: 0, relative: 0))
    }

    func testToleranceIsTheLargerOfAbsoluteAndRelative() {
        XCTAssertNil(closeness([Float(1.05)], [1], absolute: 0.1, relative: 0))
        XCTAssertNotNil(closeness([Float(1.2)], [1], absolute: 0.1, relative: 0))
        XCTAssertNil(closeness([Float(100.5)], [100], absolute: 1e-3, relative: 1e-2))
        XCTAssertNotNil(closeness([Float(102)], [100], absolute: 1e-3, relative: 1e-2))
        XCTAssertNil(closeness([Float(0.05)], [0], absolute: 0.1, relative: 1e-2), "absolute applies near zero")
        XCTAssertNotNil(closeness([Double(1 + 1e-12)], [1], absolute: 0, relative: 0), "zero tolerance is exact")
    }

    func testNaNNeverMatchesAndInfinityOnlyItself() {
        XCTAssertNotNil(closeness([Float.nan], [.nan], absolute: 1, relative: 1))
        XCTAssertNotNil(closeness([Float(1)], [.nan], absolute: 1, relative: 1))
        XCTAssertNotNil(closeness([Float.nan], [1], absolute: 1, relative: 1))
        XCTAssertNil(closeness([Float.infinity, -.infinity], [.infinity, -.infinity], absolute: 0, relative: 0))
        XCTAssertNotNil(closeness([Float(1e30)], [.infinity], absolute: 0, relative: 1), "relative · inf allows nothing")
        XCTAssertNotNil(closeness([Float.infinity], [1e30], absolute: 0, relative: 1))
    }

    func testTheMessageNamesTheCountAndTheWorstIndex() throws {
        let message = try XCTUnwrap(closeness([Float(1.2), 1.5, 1.3, 1], [1, 1, 1, 1], absolute: 0.1, relative: 0))
        XCTAssertTrue(message.contains("3 of 4 elements"), message)
        XCTAssertTrue(message.contains("worst at index 1: 1.5, expected 1.0"), message)
        let nan = try XCTUnwrap(closeness([Float(1.5), .nan], [1, 1], absolute: 0.1, relative: 0))
        XCTAssertTrue(nan.contains("worst at index 1"), nan)
    }

    func testTensorsCompareDtypeAndShapeFirst() {
        let a = Tensor(shape: [2, 3], values: [Float](repeating: 1, count: 6))
        XCTAssertNil(closeness(a, a, absolute: 0, relative: 0))
        XCTAssertEqual(closeness(a, a.reshaped([3, 2]), absolute: 1, relative: 0), "assertClose: shape [2, 3], expected [3, 2]")
        let double = Tensor(shape: [2, 3], values: [Double](repeating: 1, count: 6))
        XCTAssertEqual(closeness(a, double, absolute: 1, relative: 0), "assertClose: dtype float32, expected float64")
        XCTAssertNil(closeness(double, double, absolute: 0, relative: 0))
        let ints = Tensor(shape: [2], values: [Int32(1), 2])
        XCTAssertNotNil(closeness(ints, ints, absolute: 1, relative: 0), "integers are compared exactly elsewhere")
        let off = Tensor(shape: [2, 3], values: [Float(1), 1, 1, 1, 1, 2])
        XCTAssertNotNil(closeness(off, a, absolute: 0.5, relative: 0))
    }

    func testSeededGeneratorRepeatsForASeedAndStaysInRange() {
        XCTAssertEqual(SeededGenerator(seed: 3).floats(100), SeededGenerator(seed: 3).floats(100))
        XCTAssertNotEqual(SeededGenerator(seed: 3).floats(100), SeededGenerator(seed: 4).floats(100))
        let xs = SeededGenerator(seed: 7).floats(10_000, in: -10...10)
        XCTAssertTrue(xs.allSatisfy { (-10...10).contains($0) })
        XCTAssertLessThan(xs.min()!, -9.9)
        XCTAssertGreaterThan(xs.max()!, 9.9)
        XCTAssertEqual(Double(xs.reduce(0, +)) / 10_000, 0, accuracy: 0.2, "centred")
        XCTAssertGreaterThan(Set(xs).count, 9_900, "24-bit resolution: few repeats")
        let bytes = SeededGenerator(seed: 1).bytes(4096)
        XCTAssertEqual(Set(bytes).count, 256)
        let generator = SeededGenerator(seed: 2)
        let units = (0..<10_000).map { _ in generator.unit() }
        XCTAssertTrue(units.allSatisfy { $0 >= 0 && $0 < 1 })
        XCTAssertEqual(units.filter { $0 < 0.25 }.count, 2500, accuracy: 200)
    }

    func testSeededGeneratorIsKnuthsLCGWithTheHighBitsUsed() {
        // The first state from seed 0 is the increment: 1442695040888963407 = 0x1405_7B7E_F767_814F.
        let generator = SeededGenerator(seed: 0)
        let first = generator.next()
        XCTAssertEqual(generator.state, 1_442_695_040_888_963_407)
        XCTAssertEqual(first, generator.state ^ (generator.state >> 32))
        // Values from the top 24 bits: -1 + 2 · 0x14057B / 2^24.
        XCTAssertEqual(SeededGenerator(seed: 0).float(in: -1...1), -1 + 2 * Float(0x14_057B) / Float(1 << 24))
        XCTAssertEqual(SeededGenerator(seed: 0).bytes(1), [0x14])
    }
}
