import XCTest
@testable import KerfKernels

/// The AVX2 2x2 stride-2 max pooling agrees bit for bit with the generic plane kernel,
/// NaNs included (a NaN first tap stays, later ones are skipped).
final class MaxPool2x2Tests: XCTestCase {
    func testMatchesTheGenericKernelIncludingNaNsAndOddSizes() {
        for (h, w) in [(32, 32), (7, 9), (2, 2), (5, 17), (16, 40), (3, 1)] {
            let oh = h / 2, ow = w / 2
            var x = (0..<(h * w)).map { Float(($0 &* 7919) % 97) - 48 }
            for i in stride(from: 3, to: x.count, by: 11) { x[i] = .nan }
            let g = WindowGeometry(inputSize: [h, w], kernel: [2, 2], strides: [2, 2], dilations: [1, 1], padsBegin: [0, 0],
                                   outputSize: [oh, ow])
            var expected = [Float](repeating: 0, count: oh * ow), actual = expected
            maxPoolPlane2D(x, &expected, geometry: g, lowest: -Float.infinity, indices: nil)
            guard maxPoolPlane2x2(x, &actual, geometry: g) else {
                XCTAssertFalse(int8GemmAccelerated, "\(h) x \(w)")
                continue
            }
            XCTAssertEqual(actual.map(\.bitPattern), expected.map(\.bitPattern), "\(h) x \(w)")
        }
        let padded = WindowGeometry(inputSize: [4, 4], kernel: [2, 2], strides: [2, 2], dilations: [1, 1], padsBegin: [1, 1],
                                    outputSize: [2, 2])
        var y = [Float](repeating: 0, count: 4)
        XCTAssertFalse(maxPoolPlane2x2([Float](repeating: 1, count: 16), &y, geometry: padded))
    }
}
