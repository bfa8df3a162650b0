import XCTest
@testable import KerfCore
@testable import KerfKernels
@testable import KerfRuntime
import KerfTestSupport

/// The int8 kernels against their readable references: both GEMM layouts, uint8 and int8
/// activations, zero points at the edges of their range, K not a multiple of the kernel's
/// group, column counts not a multiple of 16, the pair saturation of the u8s8 form, and the
/// quantize / requantize epilogues' rounding and saturation.
final class Int8KernelTests: XCTestCase {

    /// Runs int8Gemm and int8GemmReference on the same operands; returns (fast, reference).
    private func products(m: Int, n: Int, k: Int, a: [UInt8], aSigned: Bool, aZero: Int32, b: [Int8], bZeros: [Int32],
                          layout: Int8GemmLayout, threads: Int = 1) -> ([Int32], [Int32]) {
        let packed = b.withUnsafeBufferPointer {
            PackedInt8Weights($0.baseAddress!, k: k, n: n, rowStride: n, columnStride: 1, zeroPoints: bZeros, layout: layout)
        }
        var fast = [Int32](repeating: -1, count: m * n), slow = fast
        a.withUnsafeBytes { ap in
            int8Gemm(m: m, a: ap.baseAddress!, aSigned: aSigned, lda: k, aZeroPoint: aZero, b: packed, c: &fast, ldc: n, threads: threads)
            int8GemmReference(m: m, n: n, k: k, a: ap.baseAddress!, aSigned: aSigned, lda: k, aZeroPoint: aZero,
                              b: { p, j in Int32(b[p * n + j]) }, bZeroPoints: bZeros, c: &slow, ldc: n,
                              saturatingPairs: layout == .u8s8 && int8GemmSaturatesPairs)
        }
        return (fast, slow)
    }

    func testBothLayoutsMatchTheReferenceForEveryActivationTypeAndZeroPoint() {
        // (n 100 and 160: four whole panels at a time, then two, then one partial, on 2 threads.)
        for (m, n, k) in [(1, 1, 1), (5, 17, 13), (4, 33, 64), (9, 40, 130), (13, 100, 40), (7, 160, 260)] {
            let a = SeededGenerator(seed: UInt64(m * 7 + k)).bytes(m * k)
            let b = SeededGenerator(seed: UInt64(n * 3 + k)).bytes(k * n).map { Int8(bitPattern: $0) }
            for aSigned in [false, true] {
                let zeros: [Int32] = aSigned ? [-128, 0, 127] : [0, 128, 255]
                for aZero in zeros {
                    for bZeros in [[Int32(0)], (0..<n).map { Int32($0 % 5) - 2 }] {
                        for layout in [Int8GemmLayout.u8s8, .wide] {
                            let (fast, slow) = products(m: m, n: n, k: k, a: a, aSigned: aSigned, aZero: aZero, b: b,
                                                        bZeros: bZeros, layout: layout, threads: 2)
                            XCTAssertEqual(fast, slow, "m \(m) n \(n) k \(k) signed \(aSigned) za \(aZero) zb \(bZeros.count) \(layout)")
                        }
                    }
                }
            }
        }
    }

    func testRowBlocksDeliverTheWholeProductWithTheirOffsets() {
        // Enough rows for several blocks (and per-thread blocks with 2 threads), a last short block.
        for (m, n, k) in [(1, 16, 8), (77, 1024, 20), (300, 48, 13)] {
            let a = SeededGenerator(seed: UInt64(m + n)).bytes(m * k)
            let b = SeededGenerator(seed: UInt64(n + k)).bytes(k * n).map { Int8(bitPattern: $0) }
            for (aSigned, aZero) in [(false, Int32(3)), (true, Int32(-5))] {
                for bZeros in [[Int32(0)], (0..<n).map { Int32($0 % 3) - 1 }] {
                    let packed = b.withUnsafeBufferPointer {
                        PackedInt8Weights($0.baseAddress!, k: k, n: n, rowStride: n, columnStride: 1, zeroPoints: bZeros, layout: .u8s8)
                    }
                    for threads in [1, 2] {
                        var whole = [Int32](repeating: 0, count: m * n), blocked = [Int32](repeating: -1, count: m * n)
                        var seen = [Int](repeating: 0, count: m)
                        a.withUnsafeBytes { ap in
                            int8Gemm(m: m, a: ap.baseAddress!, aSigned: aSigned, lda: k, aZeroPoint: aZero, b: packed, c: &whole, ldc: n)
                            blocked.withUnsafeMutableBufferPointer { out in
                                seen.withUnsafeMutableBufferPointer { seen in
                                    int8GemmByRowBlocks(m: m, a: ap.baseAddress!, aSigned: aSigned, lda: k, aZeroPoint: aZero, b: packed,
                                                        threads: threads) { acc, offsets, first, rows, _ in
                                        for i in 0..<rows {
                                            seen[first + i] += 1
                                            for j in 0..<n { out[(first + i) * n + j] = acc[i * n + j] &+ (offsets?[j] ?? 0) }
                                        }
                                    }
                                }
                            }
                        }
                        XCTAssertEqual(blocked, whole, "m \(m) n \(n) k \(k) signed \(aSigned) zb \(bZeros.count) threads \(threads)")
                        XCTAssertEqual(seen, [Int](repeating: 1, count: m))
                    }
                }
            }
        }
    }

    func testValueRangeIncludesZeroIgnoresNaNAndReadsEveryElement() {
        for count in [0, 1, 15, 16, 17, 64, 100, 1000] {
            var x = (0..<count).map { Float(($0 * 37) % 101) / 10 + 0.5 }  // all positive
            XCTAssertEqual(valueRange(x, count: count).low, 0, "count \(count): the range includes 0")
            if count > 0 {
                x[count - 1] = -7  // the last element (a vector tail for most counts)
                x[count / 2] = .nan
                x[0] = count == 1 ? -7 : 42
                let r = valueRange(x, count: count)
                XCTAssertEqual(r.low, -7, "count \(count)")
                XCTAssertEqual(r.high, count == 1 ? 0 : 42, "count \(count)")
            }
        }
    }

    func testVectorByteKernelsMatchTheirScalarDefinitions() {
        for count in [1, 15, 16, 17, 64, 65, 200] {
            let a = SeededGenerator(seed: UInt64(count)).bytes(count), b = SeededGenerator(seed: UInt64(count + 1)).bytes(count)
            // quantizedAdd (QLinearAdd), ratios that make ties and saturation likely.
            for signed in [false, true] {
                let (aRatio, bRatio): (Float, Float) = (0.5, 1.25)
                let (aZero, bZero, yZero): (Int32, Int32, Int32) = signed ? (-3, 5, 2) : (128, 120, 100)
                let (lo, hi): (Int32, Int32) = signed ? (-128, 127) : (100, 255)  // unsigned: a fused Relu's range
                func expected(_ i: Int) -> UInt8 {
                    func v(_ x: UInt8) -> Int32 { signed ? Int32(Int8(bitPattern: x)) : Int32(x) }
                    var f = aRatio * Float(v(a[i]) - aZero) + bRatio * Float(v(b[i]) - bZero)
                    f = min(max(f, Float(lo - yZero)), Float(hi - yZero))
                    return UInt8(truncatingIfNeeded: Int32(f.rounded(.toNearestOrEven)) + yZero)
                }
                var y = [UInt8](repeating: 0, count: count)
                if signed {
                    a.withUnsafeBytes { ap in b.withUnsafeBytes { bp in y.withUnsafeMutableBytes { yp in
                        quantizedAdd(ap.bindMemory(to: Int8.self).baseAddress!, aRatio: aRatio, aZero: aZero,
                                     bp.bindMemory(to: Int8.self).baseAddress!, bRatio: bRatio, bZero: bZero, count: count,
                                     yZero: yZero, lo: lo, hi: hi, into: yp.bindMemory(to: Int8.self).baseAddress!)
                    } } }
                } else {
                    quantizedAdd(a, aRatio: aRatio, aZero: aZero, b, bRatio: bRatio, bZero: bZero, count: count,
                                 yZero: yZero, lo: lo, hi: hi, into: &y)
                }
                XCTAssertEqual(y, (0..<count).map(expected), "add, count \(count), signed \(signed)")
            }
            // A 256-entry table.
            let table = (0..<256).map { UInt8(truncatingIfNeeded: $0 * 37 + 11) }
            var looked = [UInt8](repeating: 0, count: count)
            lookUpBytes(a, count: count, table: table, into: &looked)
            XCTAssertEqual(looked, a.map { table[Int($0)] }, "table, count \(count)")
            // One table per channel (channels = count, two pixels).
            let tables = (0..<(256 * count)).map { UInt8(truncatingIfNeeded: $0 * 13 + $0 / 256) }
            let image = a + b
            var perChannel = [UInt8](repeating: 0, count: 2 * count)
            lookUpChannelBytes(image, pixels: 2, channels: count, tables: tables, into: &perChannel)
            XCTAssertEqual(perChannel, image.indices.map { tables[($0 % count) * 256 + Int(image[$0])] }, "channel tables, count \(count)")
            // Requantization with a scale and a bias per column.
            let n = count, m = 2
            let acc = (0..<(m * n)).map { Int32($0 * 977 % 4001) - 2000 }
            let bias = (0..<n).map { Int32($0 % 7) - 3 }, scales = (0..<n).map { Float(0.05) + Float($0 % 5) * 0.02 }
            var q = [UInt8](repeating: 0, count: m * n)
            bias.withUnsafeBufferPointer { bp in scales.withUnsafeBufferPointer { sp in
                requantizeProduct(acc, m: m, n: n, ldAcc: n, bias: bp, multipliers: sp, zeroPoint: 10, lo: 0, hi: 255,
                                  into: &q, rowStride: n, columnStride: 1)
            } }
            let reference = (0..<(m * n)).map { k -> UInt8 in
                let f = min(max(Float(acc[k] + bias[k % n]) * scales[k % n], -10), 245)
                return UInt8(Int32(f.rounded(.toNearestOrEven)) + 10)
            }
            XCTAssertEqual(q, reference, "requantize, n \(n)")
        }
    }

    func testBytesIm2rowMatchesTheGenericOne() {
        // Padding, strides, dilation, and channels narrower than the pixel stride (a group's slice).
        for (size, kernel, stride, dilation, pad, channels, pixelStride) in [(7, 3, 1, 1, 1, 3, 3), (9, 3, 2, 1, 1, 70, 70),
                                                                            (8, 3, 1, 2, 2, 5, 8), (6, 1, 2, 1, 0, 64, 128)] {
            let out = (size + 2 * pad - dilation * (kernel - 1) - 1) / stride + 1
            let g = WindowGeometry(inputSize: [size, size], kernel: [kernel, kernel], strides: [stride, stride],
                                   dilations: [dilation, dilation], padsBegin: [pad, pad], outputSize: [out, out])
            let image = SeededGenerator(seed: UInt64(size * channels)).bytes(size * size * pixelStride)
            let width = kernel * kernel * channels, first = 1, count = out * out - 2
            var bytes = [UInt8](repeating: 0, count: count * width)
            var wide = [Int32](repeating: 0, count: count * width)
            im2rowChannelsLast(image, pixelStride: pixelStride, channels: channels, geometry: g, padding: 200, first: first,
                               count: count, rows: &bytes)
            let image32 = image.map { Int32($0) }
            im2rowChannelsLast(image32, pixelStride: pixelStride, channels: channels, geometry: g, padding: 200, first: first,
                               count: count, rows: &wide)
            XCTAssertEqual(bytes.map { Int32($0) }, wide, "size \(size) kernel \(kernel) stride \(stride) dilation \(dilation)")
        }
    }

    func testHeadLayoutPlacesEveryRowWhereReshapeAndTransposeWould() {
        let (batch, sequence, heads, headSize) = (3, 7, 2, 5)
        let n = heads * headSize, rows = batch * sequence
        let product = (0..<(rows * n)).map { Float($0) }
        for keys in [false, true] {
            let layout = HeadLayout(sequence: sequence, heads: heads, headSize: headSize, keysTransposed: keys)
            var out = [Float](repeating: -1, count: rows * n)
            // Blocks of 4 rows: some cross from one batch item to the next.
            for first in stride(from: 0, to: rows, by: 4) {
                product.withUnsafeBufferPointer { p in
                    layout.place(p.baseAddress! + first * n, first: first, count: min(4, rows - first), into: &out)
                }
            }
            for b in 0..<batch {
                for s in 0..<sequence {
                    for h in 0..<heads {
                        for d in 0..<headSize {
                            let value = product[(b * sequence + s) * n + h * headSize + d]
                            let index = keys ? ((b * heads + h) * headSize + d) * sequence + s : ((b * heads + h) * sequence + s) * headSize + d
                            XCTAssertEqual(out[index], value, "keys \(keys) b \(b) s \(s) h \(h) d \(d)")
                        }
                    }
                }
            }
            XCTAssertEqual(layout.shape(batch: batch), keys ? [3, 2, 5, 7] : [3, 2, 7, 5])
        }
    }

    func testDequantizeProductKernelsMatchTheScalarArithmetic() {
        // Row lengths around the 8- and 16-lane widths; per-column and shared scales and bias.
        for n in [1, 7, 16, 29] {
            let m = 3
            let acc = (0..<(m * (n + 2))).map { Int32($0 * 7919 % 200_003) - 100_000 }
            let offsets = (0..<n).map { Int32($0 * 31) - 50 }
            let scales = (0..<n).map { Float(0.001) * Float($0 + 1) / 3 }
            let bias = (0..<n).map { Float($0) * 0.37 - 1 }
            for (s, bs) in [(scales, Optional(bias)), (scales, nil), ([scales[0]], Optional([bias[0]]))] {
                for useOffsets in [false, true] {
                    var y = [Float](repeating: .nan, count: m * (n + 1))
                    acc.withUnsafeBufferPointer { ap in
                        s.withUnsafeBufferPointer { sp in
                            withOptionalBuffer(bs) { bp in
                                offsets.withUnsafeBufferPointer { op in
                                    dequantizeProduct(ap.baseAddress!, m: m, n: n, ldAcc: n + 2, offsets: useOffsets ? op.baseAddress : nil,
                                                      scales: sp, bias: bp, into: &y, rowStride: n + 1, columnStride: 1)
                                }
                            }
                        }
                    }
                    for i in 0..<m {
                        for j in 0..<n {
                            var v = Float(acc[i * (n + 2) + j] &+ (useOffsets ? offsets[j] : 0)) * s[s.count == 1 ? 0 : j]
                            if let bs { v = v + bs[bs.count == 1 ? 0 : j] }
                            XCTAssertEqual(y[i * (n + 1) + j].bitPattern, v.bitPattern, "n \(n) (\(i), \(j))")
                        }
                        if n > 0 { XCTAssertTrue(y[i * (n + 1) + n].isNaN, "the row gap is left alone") }
                    }
                }
            }
        }
    }

    func testU8S8SaturatesPairsAsMLASWithoutVNNIAndWideIsExact() throws {
        // A = 255 everywhere, B = 127 / -128 in pairs: each pair sum overflows int16.
        let (m, n, k) = (2, 16, 8)
        let a = [UInt8](repeating: 255, count: m * k)
        let b = (0..<(k * n)).map { i -> Int8 in (i / n) % 4 < 2 ? 127 : -128 }
        let (u8s8, _) = products(m: m, n: n, k: k, a: a, aSigned: false, aZero: 0, b: b, bZeros: [0], layout: .u8s8)
        // MLAS: AVX2 saturates each pair (and so does the reference path without AVX2); VNNI is exact.
        let saturated: Int32 = 2 * (32767 - 32768)
        let exactSum: Int32 = 255 * (4 * 127 - 4 * 128)
        XCTAssertEqual(u8s8[0], int8GemmSaturatesPairs ? saturated : exactSum)
        let (exact, _) = products(m: m, n: n, k: k, a: a, aSigned: false, aZero: 0, b: b, bZeros: [0], layout: .wide)
        XCTAssertEqual(exact[0], 255 * (4 * 127 - 4 * 128))
    }

    func testQuantizeRoundsHalfToEvenAndSaturates() {
        let x: [Float] = [0.5, 1.5, 2.5, -0.5, -1.5, 1000, -1000, .nan, 0.49999997]
        var u = [UInt8](repeating: 0, count: x.count), s = [Int8](repeating: 0, count: x.count)
        quantize(x, count: x.count, scale: 1, zeroPoint: 10, lo: 0, hi: 255, into: &u)
        XCTAssertEqual(u, [10, 12, 12, 10, 8, 255, 0, 0, 10])
        quantize(x, count: x.count, scale: 0.5, zeroPoint: -1, lo: -128, hi: 127, into: &s)
        XCTAssertEqual(s, [0, 2, 4, -2, -4, 127, -128, -128, 0])
        // A 4-bit range stored in bytes, infinities, across one full 8-lane block and a tail.
        let y: [Float] = [.infinity, -.infinity, 7.5, -8.5, 3.5, 2.5, .nan, 100, -0.0, 1]
        var q = [Int8](repeating: 0, count: y.count)
        quantize(y, count: y.count, scale: 1, zeroPoint: 0, lo: -8, hi: 7, into: &q)
        XCTAssertEqual(q, [7, -8, 7, -8, 4, 2, -8, 7, 0, 1])
        var back = [Float](repeating: 0, count: 3)
        dequantize([Int8(-128), 0, 127], count: 3, scale: 0.5, zeroPoint: -1, into: &back)
        XCTAssertEqual(back, [-63.5, 0.5, 64])
    }

    func testQuantizeRoundsTheQuotientAsTheDivideDoesNearTies() {
        // Values within two ulp of (k + 1/2) scale, where a quotient rounded differently from
        // x / scale would round to another integer; the vector kernels avoid the divide.
        var generator = SystemRandomNumberGenerator()
        for scale: Float in [0.1, 0.3, 1, 3.7 / 255, 0.0078125, 1e-3, 17.25, 6.1e-5, -0.2] {
            let x: [Float] = (0..<20_000).map { i in
                let tie = (Float(i % 301) - 150 + 0.5) * scale
                return Float(bitPattern: tie.bitPattern &+ UInt32(bitPattern: Int32.random(in: -2...2, using: &generator)))
            }
            func check<T: FixedWidthInteger>(_: T.Type, zero: Int32) {
                let lo = Int32(T.min), hi = Int32(T.max)
                var got = [T](repeating: 0, count: x.count)
                quantize(x, count: x.count, scale: scale, zeroPoint: zero, lo: lo, hi: hi, into: &got)
                for (v, g) in zip(x, got) {
                    let q = Swift.min(Swift.max(v / scale, Float(lo - zero)), Float(hi - zero))
                    XCTAssertEqual(Int32(g), Int32(q.rounded(.toNearestOrEven)) + zero, "\(v) / \(scale) as \(T.self)")
                }
            }
            check(Int8.self, zero: 3)
            check(UInt8.self, zero: 128)
        }
    }

    func testDynamicParametersMatchONNXRuntimeFormula() {
        let x: [Float] = [-1, 0.5, 3]
        let p = dynamicQuantizationParameters(x, count: x.count)
        XCTAssertEqual(p.scale, 4 / 255)
        XCTAssertEqual(p.zeroPoint, UInt8((1 / (Float(4) / 255)).rounded(.toNearestOrEven)))
        XCTAssertEqual(dynamicQuantizationParameters([0, 0], count: 2).scale, 1)  // empty range
        XCTAssertEqual(dynamicQuantizationParameters([2, 3], count: 2).zeroPoint, 0)  // range widened to 0
    }

    func testRequantizeAddsBiasRoundsAndClampsToTheFusedRange() {
        let acc: [Int32] = [10, -10, 5, 1000, 3, -3]
        var y = [UInt8](repeating: 0, count: 6)
        let bias: [Int32] = [0, 1, 0]
        let mult: [Float] = [0.25, 0.5, 0.1]
        bias.withUnsafeBufferPointer { bp in
            mult.withUnsafeBufferPointer { mp in
                requantizeProduct(acc, m: 2, n: 3, ldAcc: 3, bias: bp, multipliers: mp, zeroPoint: 100, lo: 100, hi: 150,
                                  into: &y, rowStride: 3, columnStride: 1)
            }
        }
        // 10*.25 = 2.5 -> 2; (-10+1)*.5 = -4.5 -> clamped to lo; 0.5 -> 0; 250 -> hi; (3+1)*.5 = 2; -0.3 -> lo.
        XCTAssertEqual(y, [102, 100, 100, 150, 102, 100])
    }

    func testDynamicQuantizedMatMulFusionRunsTheInt8Operator() throws {
        // DynamicQuantizeLinear -> MatMulInteger -> Cast -> Mul(Mul(x_scale, w_scale)) -> Add(bias), as ORT writes it.
        let k = 8, n = 5
        let w = Tensor(shape: [k, n], values: SeededGenerator(seed: 9).bytes(k * n).map { Int8(bitPattern: $0) })
        let g = Graph(
            nodes: dynamicProductNodes() + [
                Node(name: "add", opType: "Add", inputs: ["y0", "bias"], outputs: ["y"]),
            ],
            inputs: [ValueInfo(name: "x", type: .tensor(dtype: .float, shape: nil))],
            outputs: [ValueInfo(name: "y", type: .tensor(dtype: .float, shape: nil))],
            initializers: [Initializer(name: "w", tensor: w), Initializer(name: "wz", tensor: Tensor(scalar: Int8(0))),
                           Initializer(name: "wscale", tensor: Tensor(scalar: Float(0.02))),
                           Initializer(name: "bias", tensor: Tensor(shape: [n], values: [Float](repeating: 0.5, count: n)))])
        let opsets = [OpsetImport(domain: "", version: 17)]
        let x = Tensor(shape: [3, k], values: (0..<(3 * k)).map { Float($0 % 7) - 2.5 })
        var options = SessionOptions()
        options.probe = RuntimeProbe()
        let fused = try Session(graph: g, opsets: opsets, options: options)
        let plain = try Session(graph: g, opsets: opsets, options: SessionOptions(optimizationLevel: 0))
        XCTAssertEqual(fused.plan, ["kerf.DynamicQuantizedMatMul"])
        let y = try fused.run(["x": x])[0].array(of: Float.self)
        XCTAssertEqual(options.probe?.fusedQuantizedRuns, 1)
        _ = try Session(graph: g, opsets: opsets).run(["x": x])
        XCTAssertEqual(options.probe?.fusedQuantizedRuns, 1, "a probe sees its own session only")
        XCTAssertEqual(y, try plain.run(["x": x])[0].array(of: Float.self))
    }

    /// A dynamic product -> Reshape -> Transpose (an attention's heads) is written in head
    /// layout; a reshape that does not split the last axis into heads takes the operators' path.
    func testHeadLayoutFusionMatchesReshapeAndTransposeOrFallsBack() throws {
        let k = 8, n = 8
        let w = Tensor(shape: [k, n], values: SeededGenerator(seed: 5).bytes(k * n).map { Int8(bitPattern: $0) })
        for perm: [Int64] in [[0, 2, 1, 3], [0, 2, 3, 1]] {
            let g = Graph(
                nodes: dynamicProductNodes() + [
                    Node(name: "reshape", opType: "Reshape", inputs: ["y0", "shape"], outputs: ["y1"]),
                    Node(name: "transpose", opType: "Transpose", inputs: ["y1"], outputs: ["y"], attributes: [Attribute(name: "perm", value: .ints(perm))]),
                ],
                inputs: [ValueInfo(name: "x", type: nil), ValueInfo(name: "shape", type: nil)],
                outputs: [ValueInfo(name: "y", type: nil)],
                initializers: [Initializer(name: "w", tensor: w), Initializer(name: "wz", tensor: Tensor(scalar: Int8(0))),
                               Initializer(name: "wscale", tensor: Tensor(scalar: Float(0.02)))])
            let opsets = [OpsetImport(domain: "", version: 17)]
            let x = Tensor(shape: [2, 3, k], values: (0..<(6 * k)).map { Float($0 % 11) - 5 })
            let fused = try Session(graph: g, opsets: opsets)
            let plain = try Session(graph: g, opsets: opsets, options: SessionOptions(optimizationLevel: 0))
            XCTAssertEqual(fused.plan, ["kerf.DynamicQuantizedMatMul"])
            for shape: [Int64] in [[2, 3, 2, 4], [0, 0, 4, -1], [2, 6, 2, 2]] {
                let feeds = ["x": x, "shape": Tensor(shape: [4], values: shape)]
                let a = try fused.run(feeds)[0], b = try plain.run(feeds)[0]
                XCTAssertEqual(a.shape, b.shape, "perm \(perm) shape \(shape)")
                XCTAssertEqual(a.array(of: Float.self), b.array(of: Float.self), "perm \(perm) shape \(shape)")
            }
        }
    }

    /// The same product followed by a residual Add and a LayerNormalization: both run in the
    /// product's epilogue, with identical results; a residual that broadcasts (another shape)
    /// takes the operators' path inside the fused step, with identical results too.
    func testResidualAndLayerNormJoinTheDynamicProduct() throws {
        let k = 8, n = 48, rows = 300  // several row blocks
        let w = Tensor(shape: [k, n], values: SeededGenerator(seed: 11).bytes(k * n).map { Int8(bitPattern: $0) })
        let g = Graph(
            nodes: dynamicProductNodes() + [
                Node(name: "add", opType: "Add", inputs: ["y0", "bias"], outputs: ["y1"]),
                Node(name: "residual", opType: "Add", inputs: ["r", "y1"], outputs: ["y2"]),
                Node(name: "ln", opType: "LayerNormalization", inputs: ["y2", "gamma", "beta"], outputs: ["y"],
                     attributes: [Attribute(name: "epsilon", value: .float(1e-3))]),
            ],
            inputs: [ValueInfo(name: "x", type: nil), ValueInfo(name: "r", type: nil)],
            outputs: [ValueInfo(name: "y", type: nil)],
            initializers: [Initializer(name: "w", tensor: w), Initializer(name: "wz", tensor: Tensor(scalar: Int8(0))),
                           Initializer(name: "wscale", tensor: Tensor(scalar: Float(0.02))),
                           Initializer(name: "bias", tensor: Tensor(shape: [n], values: (0..<n).map { Float($0) * 0.01 })),
                           Initializer(name: "gamma", tensor: Tensor(shape: [n], values: (0..<n).map { 1 + Float($0) * 0.02 })),
                           Initializer(name: "beta", tensor: Tensor(shape: [n], values: (0..<n).map { Float($0) * -0.03 }))])
        let opsets = [OpsetImport(domain: "", version: 17)]
        let x = Tensor(shape: [rows, k], values: (0..<(rows * k)).map { Float($0 % 13) - 6.5 })
        let fused = try Session(graph: g, opsets: opsets, options: SessionOptions(threads: 2))
        let plain = try Session(graph: g, opsets: opsets, options: SessionOptions(optimizationLevel: 0))
        XCTAssertEqual(fused.plan, ["kerf.DynamicQuantizedMatMul"])
        for r in [Tensor(shape: [rows, n], values: (0..<(rows * n)).map { Float($0 % 17) * 0.1 }),
                  Tensor(shape: [n], values: (0..<n).map { Float($0) * 0.05 })] {
            XCTAssertEqual(try fused.run(["x": x, "r": r])[0].array(of: Float.self), try plain.run(["x": x, "r": r])[0].array(of: Float.self),
                           "residual \(r.shape)")
        }
    }
}

/// DynamicQuantizeLinear(x) -> MatMulInteger(w, wz) -> Cast -> Mul(Mul(x_scale, wscale)) = y0,
/// as ONNX Runtime writes a dynamic MatMul.
func dynamicProductNodes() -> [Node] {
    [Node(name: "dq", opType: "DynamicQuantizeLinear", inputs: ["x"], outputs: ["xq", "xs", "xz"]),
     Node(name: "ws", opType: "Mul", inputs: ["xs", "wscale"], outputs: ["s"]),
     Node(name: "mm", opType: "MatMulInteger", inputs: ["xq", "w", "xz", "wz"], outputs: ["acc"]),
     Node(name: "cast", opType: "Cast", inputs: ["acc"], outputs: ["accf"], attributes: [Attribute(name: "to", value: .int(1))]),
     Node(name: "mul", opType: "Mul", inputs: ["accf", "s"], outputs: ["y0"])]
}

extension Int8KernelTests {
    /// A requantized kerf.QuantizedMatMul followed by a byte table (per tensor, per channel, and
    /// per channel as x*k+shift) gives the same bytes as one operator with the table fused.
    func testProductTableFusionGivesTheTwoOperatorsBytes() throws {
        let (k, n) = (24, 20)
        let w = Tensor(shape: [k, n], values: SeededGenerator(seed: 3).bytes(k * n).map { Int8(truncatingIfNeeded: $0) })
        let inits = [Initializer(name: "xs", tensor: Tensor(scalar: Float(0.02))), Initializer(name: "xz", tensor: Tensor(scalar: UInt8(128))),
                     Initializer(name: "w", tensor: w),
                     Initializer(name: "ws", tensor: Tensor(shape: [n], values: (0..<n).map { Float($0 + 1) * 0.001 })),
                     Initializer(name: "ys", tensor: Tensor(scalar: Float(0.05))), Initializer(name: "yz", tensor: Tensor(scalar: UInt8(120))),
                     Initializer(name: "t1", tensor: Tensor(shape: [256], values: SeededGenerator(seed: 4).bytes(256))),
                     Initializer(name: "tc", tensor: Tensor(shape: [n, 256], values: SeededGenerator(seed: 5).bytes(n * 256))),
                     Initializer(name: "kk", tensor: Tensor(shape: [n], values: (0..<n).map { 1 + Float($0) * 0.01 })),
                     Initializer(name: "sh", tensor: Tensor(shape: [n], values: (0..<n).map { Float($0) * 0.3 - 3 })),
                     Initializer(name: "zs", tensor: Tensor(scalar: Float(0.06))), Initializer(name: "zz", tensor: Tensor(scalar: UInt8(100)))]
        // The affine table: what QuantizeLinear(DequantizeLinear(v) * k + shift) gives each byte.
        let kk = inits[8].tensor.array(of: Float.self), sh = inits[9].tensor.array(of: Float.self)
        let affine = (0..<n).flatMap { c in (0..<256).map { v -> UInt8 in
            let f = Float(v - 120) * 0.05 * kk[c] + sh[c]
            return UInt8(max(0, min(255, (f / 0.06).rounded(.toNearestOrEven) + 100)))
        } }
        let tables: [(String, [String])] = [("QuantizedTable", ["t1"]), ("QuantizedChannelTable", ["tc"]),
                                            ("QuantizedChannelTable", ["ta", "ys", "yz", "kk", "sh", "zs", "zz"])]
        for (op, tableInputs) in tables {
            let product = Node(name: "mm", opType: "QuantizedMatMul", domain: "kerf", inputs: ["x", "xs", "xz", "w", "ws", "", "", "ys", "yz"],
                               outputs: ["p"])
            let table = Node(name: "t", opType: op, domain: "kerf", inputs: ["p"] + tableInputs, outputs: ["y"],
                             attributes: [Attribute(name: "to", value: .int(Int64(DType.uint8.rawValue)))])
            let g = Graph(nodes: [product, table], inputs: [ValueInfo(name: "x", type: .tensor(dtype: .uint8, shape: nil))],
                          outputs: [ValueInfo(name: "y", type: nil)],
                          initializers: inits + [Initializer(name: "ta", tensor: Tensor(shape: [n, 256], values: affine))])
            let opsets = [OpsetImport(domain: "", version: 17), OpsetImport(domain: "kerf", version: 1)]
            let x = Tensor(shape: [7, k], values: SeededGenerator(seed: 6).bytes(7 * k))
            let plain = try Session(graph: g, opsets: opsets, options: SessionOptions(threads: 1, optimizationLevel: 0))
            let fused = try Session(graph: g, opsets: opsets, options: SessionOptions(threads: 1, optimizationLevel: 1))
            XCTAssertEqual(fused.plan, ["kerf.QuantizedMatMul"], op)
            let expected = try plain.run(["x": x])[0], actual = try fused.run(["x": x])[0]
            XCTAssertEqual(actual.shape, [7, n])
            XCTAssertEqual(actual.array(of: UInt8.self), expected.array(of: UInt8.self), "\(op) \(tableInputs[0])")
            XCTAssertGreaterThan(Set(expected.array(of: UInt8.self)).count, 30, "not degenerate")
        }
    }
}

extension Int8KernelTests {
    /// Kerf's static files of scikit-learn MLPs: MatMul -> Add(bias [1, N]) -> Relu ->
    /// QuantizeLinear is one kerf.QuantizedMatMul (float bias with its rank, Relu, quantized
    /// output), within one byte of the graph; an X of rank 1 gets the [1, N] Add gives it.
    func testProductTakesABiasWithLeadingOnesReluAndQuantization() throws {
        let (k, n) = (16, 24)
        let inits = [Initializer(name: "xs", tensor: Tensor(scalar: Float(0.03))), Initializer(name: "xz", tensor: Tensor(scalar: UInt8(128))),
                     Initializer(name: "w", tensor: Tensor(shape: [k, n], values: SeededGenerator(seed: 8).bytes(k * n).map { Int8(truncatingIfNeeded: $0) })),
                     Initializer(name: "ws", tensor: Tensor(scalar: Float(0.004))), Initializer(name: "wz", tensor: Tensor(scalar: Int8(0))),
                     Initializer(name: "b", tensor: Tensor(shape: [1, n], values: (0..<n).map { Float($0) * 0.05 - 0.6 })),
                     Initializer(name: "ys", tensor: Tensor(scalar: Float(0.02))), Initializer(name: "yz", tensor: Tensor(scalar: UInt8(0)))]
        let nodes = [Node(name: "q", opType: "QuantizeLinear", inputs: ["x", "xs", "xz"], outputs: ["xq"]),
                     Node(name: "dq", opType: "DequantizeLinear", inputs: ["xq", "xs", "xz"], outputs: ["xf"]),
                     Node(name: "dqw", opType: "DequantizeLinear", inputs: ["w", "ws", "wz"], outputs: ["wf"]),
                     Node(name: "mm", opType: "MatMul", inputs: ["xf", "wf"], outputs: ["m"]),
                     Node(name: "add", opType: "Add", inputs: ["m", "b"], outputs: ["a"]),
                     Node(name: "relu", opType: "Relu", inputs: ["a"], outputs: ["r"]),
                     Node(name: "qy", opType: "QuantizeLinear", inputs: ["r", "ys", "yz"], outputs: ["y"])]
        let g = Graph(nodes: nodes, inputs: [ValueInfo(name: "x", type: .tensor(dtype: .float, shape: nil))],
                      outputs: [ValueInfo(name: "y", type: nil)], initializers: inits)
        let opsets = [OpsetImport(domain: "", version: 17)]
        let plain = try Session(graph: g, opsets: opsets, options: SessionOptions(threads: 1, optimizationLevel: 0))
        let fused = try Session(graph: g, opsets: opsets, options: SessionOptions(threads: 1, optimizationLevel: 1))
        XCTAssertEqual(fused.plan, ["QuantizeLinear", "kerf.QuantizedMatMul"])
        for shape in [[5, k], [k]] {
            let count = shape.reduce(1, *)
            let x = Tensor(shape: shape, values: SeededGenerator(seed: 9).bytes(count).map { Float($0) / 64 - 2 })
            let expected = try plain.run(["x": x])[0], actual = try fused.run(["x": x])[0]
            XCTAssertEqual(actual.shape, expected.shape)
            XCTAssertEqual(actual.shape.last, n)
            let e = expected.array(of: UInt8.self), a = actual.array(of: UInt8.self)
            XCTAssertLessThanOrEqual(zip(e, a).map { abs(Int($0) - Int($1)) }.max() ?? 0, 1, "X \(shape)")
            XCTAssertGreaterThan(Set(e).count, 10, "not degenerate")
            XCTAssertTrue(e.contains(0), "the Relu clips some")
        }
    }
}
