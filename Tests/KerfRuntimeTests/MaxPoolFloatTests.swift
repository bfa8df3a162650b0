import XCTest
@testable import KerfKernels

/// The float max pooling kernels agree bit for bit with the generic plane kernel, NaNs
/// included (a NaN first tap stays, later ones are skipped).
final class MaxPoolFloatTests: XCTestCase {
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

    func testPaddedStridedDilatedWindowsMatchTheGenericKernel() {
        // (h, w, kernel, stride, dilation, pad, extra output columns/rows as ceil_mode makes)
        let cases: [(Int, Int, Int, Int, Int, Int, Int)] = [
            (112, 112, 3, 2, 1, 1, 0), (7, 9, 3, 1, 1, 1, 0), (8, 8, 2, 2, 1, 0, 1), (10, 13, 3, 2, 2, 2, 0),
            (5, 5, 5, 1, 1, 2, 0), (4, 6, 3, 3, 1, 1, 1), (1, 1, 3, 1, 1, 1, 0), (9, 4, 2, 1, 3, 0, 0),
        ]
        for (h, w, k, s, d, p, extra) in cases {
            let span = (k - 1) * d + 1
            let oh = (h + 2 * p - span) / s + 1 + extra, ow = (w + 2 * p - span) / s + 1 + extra
            var x = (0..<(h * w)).map { Float(($0 &* 7919) % 97) - 48 }
            for i in stride(from: 2, to: x.count, by: 13) { x[i] = .nan }
            let g = WindowGeometry(inputSize: [h, w], kernel: [k, k], strides: [s, s], dilations: [d, d], padsBegin: [p, p],
                                   outputSize: [oh, ow])
            var expected = [Float](repeating: 0, count: oh * ow), actual = expected
            var indices = [Int](repeating: 0, count: oh * ow)  // forces the generic kernel's checked path
            maxPoolPlane2D(x, &expected, geometry: g, lowest: -Float.infinity, indices: &indices)
            maxPoolPlane2DFloat(x, &actual, geometry: g)
            XCTAssertEqual(actual.map(\.bitPattern), expected.map(\.bitPattern), "\(h)x\(w) k\(k) s\(s) d\(d) p\(p) +\(extra)")
        }
    }
}
