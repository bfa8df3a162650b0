import XCTest
@testable import KerfKernels
import KerfTestSupport

/// The int8 CNN kernels against readable definitions: channels-last im2row against `im2row` on
/// the NCHW image (every window kind, any pixel range), the channel-major requantization path
/// against the row-major one, and the elementwise Add / plane-mean kernels' rounding and
/// saturation.
final class Int8ConvKernelTests: XCTestCase {
    func testChannelsLastIm2rowMatchesIm2rowForEveryWindowKind() {
        let (c, h, w) = (5, 7, 6)
        let x = SeededGenerator(seed: 3).bytes(c * h * w)
        // (kernel, stride, dilation, pad)
        for (k, s, d, p) in [(1, 1, 1, 0), (3, 1, 1, 1), (3, 2, 1, 1), (3, 1, 2, 2), (5, 2, 1, 2), (2, 3, 1, 0)] {
            let oh = (h + 2 * p - d * (k - 1) - 1) / s + 1, ow = (w + 2 * p - d * (k - 1) - 1) / s + 1
            let g = WindowGeometry(inputSize: [h, w], kernel: [k, k], strides: [s, s], dilations: [d, d], padsBegin: [p, p],
                                   outputSize: [oh, ow])
            let width = k * k * c, oc = oh * ow
            var expected = [UInt8](repeating: 0, count: oc * width)
            im2row(x, channels: c, geometry: g, padding: 77, rows: &expected)
            var nhwc = [UInt8](repeating: 0, count: x.count)
            transposeToChannelsLast(x, channels: c, pixels: h * w, into: &nhwc)
            for (first, count) in [(0, oc), (1, oc - 3), (oc - 1, 1)] {
                var rows = [UInt8](repeating: 0, count: count * width)
                im2rowChannelsLast(nhwc, pixelStride: c, channels: c, geometry: g, padding: 77, first: first, count: count, rows: &rows)
                XCTAssertEqual(rows, Array(expected[(first * width)..<((first + count) * width)]), "k \(k) s \(s) d \(d) p \(p) first \(first)")
            }
            // Channels 1..<4 of the 5 (a group), with the full pixel stride.
            var expectedGroup = [UInt8](repeating: 0, count: oc * k * k * 3)
            x.withUnsafeBufferPointer { im2row($0.baseAddress! + h * w, channels: 3, geometry: g, padding: 77, rows: &expectedGroup) }
            var group = [UInt8](repeating: 0, count: oc * k * k * 3)
            nhwc.withUnsafeBufferPointer {
                im2rowChannelsLast($0.baseAddress! + 1, pixelStride: c, channels: 3, geometry: g, padding: 77, first: 0, count: oc, rows: &group)
            }
            XCTAssertEqual(group, expectedGroup, "group: k \(k) s \(s) d \(d) p \(p)")
        }
    }

    func testChannelsLastTransposeOfBytesForTileAndEdgeSizes() {
        // 16x16 tiles, partial tiles on either side, and fewer than 16 channels or pixels.
        for (channels, pixels) in [(16, 16), (32, 49), (5, 42), (37, 16), (3, 1024), (64, 9), (1, 1)] {
            let x = SeededGenerator(seed: UInt64(channels * 31 + pixels)).bytes(channels * pixels)
            var y = [UInt8](repeating: 0, count: x.count)
            transposeToChannelsLast(x, channels: channels, pixels: pixels, into: &y)
            var mismatches = 0
            for c in 0..<channels { for p in 0..<pixels where y[p * channels + c] != x[c * pixels + p] { mismatches += 1 } }
            XCTAssertEqual(mismatches, 0, "channels \(channels) pixels \(pixels)")
            let signed = x.map { Int8(bitPattern: $0) }
            var ys = [Int8](repeating: 0, count: x.count)
            transposeToChannelsLast(signed, channels: channels, pixels: pixels, into: &ys)
            XCTAssertEqual(ys.map { UInt8(bitPattern: $0) }, y)
        }
    }

    func testChannelMajorRequantizationMatchesRowMajor() {
        // Shapes with whole 8x8 tiles, partial tiles on both sides, and more rows than one
        // 64-row block; acc rows wider than n (ldAcc); per-column and shared scale and bias;
        // both output types. Scale 0.5 on odd sums makes exact ties (half to even).
        for (m, n, ldAcc) in [(150, 5, 5), (37, 21, 24), (64, 16, 16), (8, 8, 9), (3, 11, 11)] {
            let acc = SeededGenerator(seed: UInt64(m + n)).bytes(m * ldAcc).map { Int32($0) * 37 - 4000 }
            let manyBias = (0..<n).map { Int32($0 * 97 % 1500) - 700 }
            let manyScales = (0..<n).map { [0.01, 0.02, 0.005, 0.5, 0.0125][$0 % 5] as Float }
            for (bias, scales) in [(manyBias, manyScales), ([Int32(5)], [Float(0.5)]), ([], [Float(0.03)])] {
                func check<T: FixedWidthInteger>(_: T.Type, zero: Int32, lo: Int32, hi: Int32) {
                    var rowMajor = [T](repeating: 0, count: m * n), channelMajor = rowMajor
                    bias.withUnsafeBufferPointer { b in
                        scales.withUnsafeBufferPointer { s in
                            let b = bias.isEmpty ? nil : b
                            requantizeProduct(acc, m: m, n: n, ldAcc: ldAcc, bias: b, multipliers: s, zeroPoint: zero, lo: lo, hi: hi,
                                              into: &rowMajor, rowStride: n, columnStride: 1)
                            requantizeProduct(acc, m: m, n: n, ldAcc: ldAcc, bias: b, multipliers: s, zeroPoint: zero, lo: lo, hi: hi,
                                              into: &channelMajor, rowStride: 1, columnStride: m)
                        }
                    }
                    var mismatches = 0, wrong = 0
                    for i in 0..<m {
                        for j in 0..<n {
                            if channelMajor[j * m + i] != rowMajor[i * n + j] { mismatches += 1 }
                            // The contract, element by element (both layouts run in AVX2 lanes).
                            let sum = acc[i * ldAcc + j] &+ (bias.isEmpty ? 0 : bias[bias.count > 1 ? j : 0])
                            let v = min(max(Float(sum) * scales[scales.count > 1 ? j : 0], Float(lo - zero)), Float(hi - zero))
                            if rowMajor[i * n + j] != T(truncatingIfNeeded: Int32(v.rounded(.toNearestOrEven)) + zero) { wrong += 1 }
                        }
                    }
                    XCTAssertEqual(mismatches, 0, "\(T.self) m \(m) n \(n) bias \(bias.count) scales \(scales.count)")
                    XCTAssertEqual(wrong, 0, "\(T.self) m \(m) n \(n) bias \(bias.count) scales \(scales.count)")
                }
                check(Int8.self, zero: -3, lo: -3, hi: 127)
                check(Int8.self, zero: 0, lo: -128, hi: 127)
                check(UInt8.self, zero: 128, lo: 0, hi: 255)
                check(UInt8.self, zero: 7, lo: 7, hi: 200)
            }
        }
    }

    func testQuantizedAddRoundsHalfToEvenAndSaturates() {
        // 0.5 * (a - 10) + 0.25 * (b - 4) + 100, in [lo, hi].
        let a: [UInt8] = [11, 13, 10, 255, 0, 10], b: [UInt8] = [4, 4, 6, 255, 0, 12]
        var y = [UInt8](repeating: 0, count: a.count)
        quantizedAdd(a, aRatio: 0.5, aZero: 10, b, bRatio: 0.25, bZero: 4, count: a.count, yZero: 100, lo: 0, hi: 255, into: &y)
        // 0.5 -> 0; 1.5 -> 2; 0.5 -> 0; 122.5 + 62.75 -> 255; -5 - 1 -> 94; 0 + 2 -> 102.
        XCTAssertEqual(y, [100, 102, 100, 255, 94, 102])
        quantizedAdd(a, aRatio: 0.5, aZero: 10, b, bRatio: 0.25, bZero: 4, count: a.count, yZero: 100, lo: 100, hi: 120, into: &y)
        XCTAssertEqual(y, [100, 102, 100, 120, 100, 102])  // a fused Relu: at least the zero point
    }

    func testPlaneMeansRequantizeTheExactSum() {
        let x: [Int8] = [1, 2, 3, 4, -128, -128, -128, -127]
        var y = [Int8](repeating: 0, count: 2)
        // (10 - 4 * 2) * 0.5 = 1 -> 1 + 5; (-511 - 8) * 0.5 = -259.5 -> saturates.
        quantizedPlaneMeans(x, planes: 2, planeSize: 4, xZero: 2, multiplier: 0.5, yZero: 5, lo: -128, hi: 127, into: &y)
        XCTAssertEqual(y, [6, -128])
    }
}
