import KerfCore
import KerfKernels
import KerfTestSupport
import XCTest

/// Conv's gradients against finite differences (float64, the reference path), and oneDNN's
/// float backward primitives against the float64 reference kernels.
final class ConvolutionGradientTests: XCTestCase {
    private func attr(_ name: String, _ v: Int) -> Attribute { Attribute(name: name, value: .int(Int64(v))) }
    private func attr(_ name: String, _ v: [Int]) -> Attribute { Attribute(name: name, value: .ints(v.map(Int64.init))) }
    private func attr(_ name: String, _ v: String) -> Attribute { Attribute(name: name, value: .string(Data(v.utf8))) }

    /// Conv of x[2, 4, spatial...] with W[m, 4/group, kernel...], trained x, W and (optionally) B.
    private func check(_ attributes: [Attribute], group: Int = 1, m: Int = 4, spatial: [Int] = [5, 5], kernel: [Int] = [3, 3],
                       bias: Bool = true, file: StaticString = #filePath, line: UInt = #line) throws {
        var trained: [(name: String, shape: [Int], range: ClosedRange<Double>)] = [("x", [2, 4] + spatial, -1...1),
                                                                                   ("w", [m, 4 / group] + kernel, -1...1)]
        if bias { trained.append(("b", [m], -1...1)) }
        let all = attributes + (group == 1 ? [] : [attr("group", group)])
        try checkGradients(GradientCase(op: "Conv", attributes: all, trained: trained, inputs: trained.map(\.name)), file: file, line: line)
    }

    func testConv2DGroupsStridesPads() throws {
        for (group, m) in [(1, 4), (2, 4), (4, 4), (4, 8)] {
            try check([], group: group, m: m)
            try check([attr("pads", [1, 1, 1, 1])], group: group, m: m)
            try check([attr("strides", [2, 2]), attr("pads", [1, 1, 1, 1])], group: group, m: m, bias: false)
        }
        try check([attr("strides", [2, 1]), attr("pads", [0, 1, 2, 0])])
        try check([attr("strides", [3, 2]), attr("pads", [1, 0, 0, 1])], group: 2)
        try check([attr("kernel_shape", [3, 3]), attr("pads", [2, 2, 2, 2])], group: 2, m: 6, bias: false)
        try check([attr("pads", [1, 1, 1, 1])], kernel: [1, 1])
        try check([], kernel: [1, 1])
        try check([attr("strides", [2, 2])], kernel: [1, 1], bias: false)
    }

    func testConv2DAutoPadAndDilations() throws {
        for autoPad in ["SAME_UPPER", "SAME_LOWER", "VALID"] {
            for strides in [[1, 1], [2, 2]] {
                try check([attr("auto_pad", autoPad), attr("strides", strides)], group: 2, m: 4)
            }
            try check([attr("auto_pad", autoPad)], kernel: [2, 2])
            try check([attr("auto_pad", autoPad), attr("dilations", [2, 1])], kernel: [2, 3])
        }
        try check([attr("dilations", [2, 2]), attr("pads", [2, 2, 2, 2])], group: 4)
        try check([attr("dilations", [1, 2]), attr("strides", [2, 1]), attr("pads", [1, 0, 1, 2])], group: 2)
    }

    func testConv1DAnd3D() throws {
        try check([], spatial: [7], kernel: [3])
        try check([attr("pads", [1, 2]), attr("strides", [2])], group: 2, spatial: [7], kernel: [3])
        try check([attr("auto_pad", "SAME_UPPER"), attr("dilations", [2])], group: 4, m: 8, spatial: [7], kernel: [3])
        try check([attr("pads", [1, 0, 1, 0, 1, 1])], group: 2, spatial: [3, 4, 3], kernel: [2, 2, 2])
    }

    func testBiasOnlyAndInputOnly() throws {
        // Only X and B trained (W a constant): B's gradient through ReduceSum.
        let w = Initializer(name: "w", tensor: Tensor(shape: [4, 2, 3, 3], values: (0..<72).map { Double($0 % 7) / 7 - 0.4 }))
        try checkGradients(GradientCase(op: "Conv", attributes: [attr("group", 2), attr("pads", [1, 1, 1, 1])],
                                        trained: [("x", [2, 4, 5, 5], -1...1), ("b", [4], -1...1)], inputs: ["x", "w", "b"], constants: [w]))
        // Only W trained (X a constant, as a network's first layer).
        let x = Initializer(name: "x", tensor: Tensor(shape: [2, 4, 5, 5], values: (0..<200).map { Double($0 % 11) / 11 - 0.5 }))
        try checkGradients(GradientCase(op: "Conv", attributes: [attr("strides", [2, 2])],
                                        trained: [("w", [3, 4, 3, 3], -1...1)], inputs: ["x", "w"], constants: [x]))
    }

    /// Float: oneDNN's backward-data and backward-weights primitives against the double
    /// reference kernels, over geometries oneDNN has JIT kernels for.
    func testOneDnnBackwardMatchesReference() throws {
        try XCTSkipUnless(OneDnnEngine.available, "no oneDNN engine")
        struct Case { var n = 2, c = 16, m = 32, group = 1, size = [9, 9], kernel = [3, 3], strides = [1, 1], dilations = [1, 1], pads = [1, 1] }
        let cases = [Case(), Case(c: 4, m: 8), Case(group: 2), Case(c: 16, m: 16, group: 16), Case(strides: [2, 2]),
                     Case(n: 1, c: 8, m: 8, size: [10, 7], kernel: [3, 2], strides: [2, 1], dilations: [2, 1], pads: [2, 0]),
                     Case(kernel: [1, 1], pads: [0, 0]), Case(size: [13], kernel: [5], strides: [2], dilations: [1], pads: [2]),
                     Case(n: 3, c: 64, m: 64, size: [14, 14])]
        let rng = SeededGenerator(seed: 7)
        var implementations: [String] = []
        for t in cases {
            let rank = t.size.count
            var out: [Int] = []
            for d in 0..<rank {
                let span: Int = (t.kernel[d] - 1) * t.dilations[d] + 1
                out.append((t.size[d] + 2 * t.pads[d] - span) / t.strides[d] + 1)
            }
            let g = WindowGeometry(inputSize: t.size, kernel: t.kernel, strides: t.strides, dilations: t.dilations, padsBegin: t.pads, outputSize: out)
            let s = ConvolutionShape(batch: t.n, channels: t.c, outChannels: t.m, group: t.group, geometry: g)
            let xCount = t.n * t.c * g.inputCount, yCount = t.n * t.m * g.outputCount, wCount = t.m * (t.c / t.group) * g.kernelCount
            let x = (0..<xCount).map { _ in rng.unit() * 2 - 1 }, dy = (0..<yCount).map { _ in rng.unit() * 2 - 1 }
            let w = (0..<wCount).map { _ in rng.unit() * 2 - 1 }
            let scratch = UnsafeMutableRawPointer.allocate(byteCount: max(64, s.columnBytes(elementSize: 8)), alignment: 64)
            defer { scratch.deallocate() }
            var dx = [Double](repeating: 0, count: xCount), dw = [Double](repeating: 0, count: wCount), db = [Double](repeating: 0, count: t.m)
            convolutionBackwardDataReference(dy, w, &dx, shape: s, scratch: [scratch])
            convolutionBackwardWeightsReference(dy, x, &dw, &db, shape: s, scratch: scratch)

            let data = try XCTUnwrap(OneDnnConvolutionBackward(.data, shape: s), "no backward-data primitive for \(t)")
            let weights = try XCTUnwrap(OneDnnConvolutionBackward(.weights(bias: true), shape: s), "no backward-weights primitive for \(t)")
            implementations += [data.implementation, weights.implementation]
            let xf = x.map(Float.init), dyf = dy.map(Float.init), wf = w.map(Float.init)
            var dxf = [Float](repeating: .nan, count: xCount), dwf = [Float](repeating: .nan, count: wCount), dbf = [Float](repeating: .nan, count: t.m)
            XCTAssertTrue(data.backwardData(dyf, wf, &dxf))
            XCTAssertTrue(weights.backwardWeights(dyf, xf, &dwf, &dbf))
            assertClose(dxf.map(Double.init), dx, absolute: 1e-4, relative: 1e-4, "dX \(t) by \(data.implementation)")
            assertClose(dwf.map(Double.init), dw, absolute: 1e-3, relative: 1e-4, "dW \(t) by \(weights.implementation)")
            assertClose(dbf.map(Double.init), db, absolute: 1e-3, relative: 1e-4, "dB \(t)")
            // The float reference kernels too (the fallback path).
            let scratchF = UnsafeMutableRawPointer.allocate(byteCount: max(64, s.columnBytes(elementSize: 4)), alignment: 64)
            defer { scratchF.deallocate() }
            var dxr = [Float](repeating: .nan, count: xCount), dwr = [Float](repeating: .nan, count: wCount), dbr = [Float](repeating: .nan, count: t.m)
            convolutionBackwardDataReference(dyf, wf, &dxr, shape: s, scratch: [scratchF])
            convolutionBackwardWeightsReference(dyf, xf, &dwr, &dbr, shape: s, scratch: scratchF)
            assertClose(dxr.map(Double.init), dx, absolute: 1e-4, relative: 1e-4, "float reference dX \(t)")
            assertClose(dwr.map(Double.init), dw, absolute: 1e-3, relative: 1e-4, "float reference dW \(t)")
        }
        print("oneDNN backward implementations:", Set(implementations).sorted())
    }
}
