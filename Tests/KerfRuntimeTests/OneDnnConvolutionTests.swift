import XCTest
@testable import KerfKernels

/// oneDNN's direct convolution and the layout changes around it match plain definitions.
final class OneDnnConvolutionTests: XCTestCase {
    private func values(_ count: Int, seed: Int) -> [Float] {
        (0..<count).map { Float(($0 &* 7919 &+ seed &* 104729) % 2001) / 1000 - 1 }
    }

    func testLayoutChangesMatchTheDefinition() {
        for (images, channels, positions) in [(1, 3, 1024), (2, 32, 49), (3, 17, 29), (1, 1024, 8), (2, 8, 8), (1, 5, 3)] {
            let x = values(images * channels * positions, seed: channels)
            var last = [Float](repeating: .nan, count: x.count)
            channelsFirstToLast(x, images: images, channels: channels, positions: positions, &last)
            for n in 0..<images {
                for c in 0..<channels {
                    for p in 0..<positions {
                        XCTAssertEqual(last[(n * positions + p) * channels + c], x[(n * channels + c) * positions + p])
                    }
                }
            }
            var first = [Float](repeating: .nan, count: x.count)
            channelsLastToFirst(last, images: images, channels: channels, positions: positions, &first)
            XCTAssertEqual(first, x, "\(images) x \(channels) x \(positions)")
            let residual = values(x.count, seed: 5)
            channelsLastToFirst(last, images: images, channels: channels, positions: positions, adding: residual, &first)
            XCTAssertEqual(first, zip(x, residual).map { $0 + $1 })
            // The portable tiles agree with the AVX2 kernel, residual included.
            var portable = [Float](repeating: .nan, count: x.count)
            transposeReference(last, rows: images * positions, columns: channels, lds: channels, adding: nil, &portable,
                               ldd: images * positions)
            var fast = [Float](repeating: .nan, count: x.count)
            transpose(last, rows: images * positions, columns: channels, lds: channels, adding: nil, &fast, ldd: images * positions)
            XCTAssertEqual(portable, fast)
        }
    }

    struct Case {
        var batch = 1, channels = 3, size = (7, 7), outChannels = 16, kernel = (3, 3)
        var strides = (1, 1), dilations = (1, 1), padsBegin = (1, 1), padsEnd = (1, 1), group = 1
        var bias = true, residual = false, activation = Activation.none
    }

    /// y[n, m, oy, ox] = activation(sum over the group's channels and taps of x * w + b [+ r]).
    private func reference(_ c: Case, _ x: [Float], _ w: [Float], _ b: [Float], _ r: [Float], outSize: (Int, Int)) -> [Float] {
        let (h, wd) = c.size, (kh, kw) = c.kernel, (oh, ow) = outSize
        let cg = c.channels / c.group, mg = c.outChannels / c.group
        var y = [Float](repeating: 0, count: c.batch * c.outChannels * oh * ow)
        for n in 0..<c.batch {
            for m in 0..<c.outChannels {
                let g = m / mg
                for oy in 0..<oh {
                    for ox in 0..<ow {
                        var sum: Double = 0
                        for ci in 0..<cg {
                            for ky in 0..<kh {
                                for kx in 0..<kw {
                                    let iy = oy * c.strides.0 - c.padsBegin.0 + ky * c.dilations.0
                                    let ix = ox * c.strides.1 - c.padsBegin.1 + kx * c.dilations.1
                                    guard iy >= 0, iy < h, ix >= 0, ix < wd else { continue }
                                    let xv = x[((n * c.channels + g * cg + ci) * h + iy) * wd + ix]
                                    sum += Double(xv) * Double(w[((m * cg + ci) * kh + ky) * kw + kx])
                                }
                            }
                        }
                        let o = ((n * c.outChannels + m) * oh + oy) * ow + ox
                        var v = Float(sum) + (c.bias ? b[m] : 0)
                        if c.residual { v += r[o] }
                        y[o] = v
                    }
                }
            }
        }
        c.activation.apply(&y, count: y.count)
        return y
    }

    func testDirectConvolutionMatchesTheDefinition() throws {
        var cases: [Case] = [Case()]
        cases.append(Case(batch: 3, channels: 32, size: (9, 8), outChannels: 32, activation: .relu))
        cases.append(Case(batch: 2, channels: 5, size: (11, 13), outChannels: 7, kernel: (5, 3), strides: (2, 3), padsBegin: (2, 0), padsEnd: (1, 2)))
        cases.append(Case(channels: 16, size: (10, 10), outChannels: 24, dilations: (2, 2), padsBegin: (2, 2), padsEnd: (2, 2), bias: false))
        cases.append(Case(batch: 2, channels: 24, size: (8, 8), outChannels: 24, group: 3, residual: true, activation: .relu))
        cases.append(Case(batch: 2, channels: 16, size: (6, 6), outChannels: 16, group: 16, activation: .leakyRelu(alpha: 0.1)))
        cases.append(Case(batch: 4, channels: 8, size: (5, 5), outChannels: 20, kernel: (1, 1), strides: (2, 2), padsBegin: (0, 0),
                          padsEnd: (0, 0), residual: true, activation: .clip(min: -0.5, max: 0.5)))
        cases.append(Case(batch: 64, channels: 32, size: (16, 16), outChannels: 32, residual: true, activation: .relu))
        // One image large enough for its layout changes to split over the OpenMP team at 2
        // threads: by rows (many channels) and by columns (three channels).
        cases.append(Case(batch: 1, channels: 32, size: (40, 36), outChannels: 48, residual: true, activation: .relu))
        cases.append(Case(batch: 1, channels: 3, size: (112, 100), outChannels: 16, kernel: (7, 7), strides: (2, 2),
                          padsBegin: (3, 3), padsEnd: (3, 3)))
        for c in cases {
            let oh = (c.size.0 + c.padsBegin.0 + c.padsEnd.0 - (c.kernel.0 - 1) * c.dilations.0 - 1) / c.strides.0 + 1
            let ow = (c.size.1 + c.padsBegin.1 + c.padsEnd.1 - (c.kernel.1 - 1) * c.dilations.1 - 1) / c.strides.1 + 1
            let g = WindowGeometry(inputSize: [c.size.0, c.size.1], kernel: [c.kernel.0, c.kernel.1], strides: [c.strides.0, c.strides.1],
                                   dilations: [c.dilations.0, c.dilations.1], padsBegin: [c.padsBegin.0, c.padsBegin.1], outputSize: [oh, ow])
            let x = values(c.batch * c.channels * c.size.0 * c.size.1, seed: 1)
            let w = values(c.outChannels * c.channels / c.group * c.kernel.0 * c.kernel.1, seed: 2)
            let b = values(c.outChannels, seed: 3), r = values(c.batch * c.outChannels * oh * ow, seed: 4)
            let expected = reference(c, x, w, b, r, outSize: (oh, ow))
            // oneDNN capped below AVX2 (KERF_MAX_ISA=scalar) may have no direct kernel: the
            // runtime then keeps its own convolution.
            guard let convolution = b.withUnsafeBufferPointer({ bv in
                OneDnnConvolution(geometry: g, batch: c.batch, channels: c.channels, outChannels: c.outChannels, group: c.group,
                                  weights: w, bias: c.bias ? bv.baseAddress : nil, activation: c.activation, residual: c.residual)
            }) else {
                XCTAssertLessThan(InstructionSet.inUse, .avx2, "no oneDNN convolution for \(c)")
                continue
            }
            var outputs: [[Float]] = []
            for threads in [1, 2] {
                setGemmThreads(threads)  // as a session does: the OpenMP team one image's work splits over
                var y = [Float](repeating: .nan, count: expected.count)
                let ok = r.withUnsafeBufferPointer { rv in
                    convolution.run(x, &y, residual: c.residual ? rv.baseAddress : nil, threads: threads)
                }
                XCTAssertTrue(ok)
                for i in 0..<y.count where abs(y[i] - expected[i]) > 1e-4 * max(1, abs(expected[i])) {
                    XCTFail("\(c) threads \(threads): y[\(i)] = \(y[i]), expected \(expected[i])")
                    break
                }
                outputs.append(y)
            }
            XCTAssertEqual(outputs[0], outputs[1], "\(c): 1 and 2 threads differ")
        }
    }

    func testChunksKeepACopyOfImagesInL2AndDivideTheBatch() {
        XCTAssertEqual(OneDnnConvolution.chunk(batch: 32, floatsPerImage: 65536), 4)
        XCTAssertEqual(OneDnnConvolution.chunk(batch: 30, floatsPerImage: 65536), 3)
        XCTAssertEqual(OneDnnConvolution.chunk(batch: 7, floatsPerImage: 65536), 1)
        XCTAssertEqual(OneDnnConvolution.chunk(batch: 1, floatsPerImage: 1 << 22), 1)
        XCTAssertEqual(OneDnnConvolution.chunk(batch: 8, floatsPerImage: 10), 8)
    }
}
