import XCTest
@testable import KerfCompress
@testable import KerfCore
import KerfRuntime
import KerfTestSupport

/// Calibration statistics, quantization parameters and the float rewrites of quantization.
/// (End-to-end files are checked against ONNX Runtime in bindings/python/tests/test_quantize.py.)
final class QuantizationTests: XCTestCase {
    private func statistics(_ batches: [[Float]], bins: Int = 2048) -> ActivationStatistics {
        var s = ActivationStatistics(bins: bins)
        for b in batches { b.withUnsafeBufferPointer { s.add($0) } }
        return s
    }

    func testStreamingHistogramEqualsOneShotHistogramAfterRangeDoubling() {
        // The 1st batch sets the range to 2 (the power of two above 1); a later one reaches 7.5,
        // so it doubles twice (to 8).
        let batches: [[Float]] = [[0.25, -1, 0.5], [3, -7.5, 0.125, 2], [6.9, -0.01]]
        let streamed = statistics(batches, bins: 256)
        XCTAssertEqual(streamed.limit, 8)
        XCTAssertEqual(streamed.min, -7.5)
        XCTAssertEqual(streamed.max, 6.9)
        var expected = [Double](repeating: 0, count: 256)
        for v in batches.joined() { expected[min(Int(abs(v) / 8 * 256), 255)] += 1 }
        XCTAssertEqual(streamed.counts, expected)
    }

    func testNonFiniteValuesAreCountedNotBinned() {
        let s = statistics([[1, .nan, -2, .infinity]])
        XCTAssertEqual(s.nonFinite, 2)
        XCTAssertEqual(s.counts.reduce(0, +), 2)
        XCTAssertEqual(s.max, 1)
    }

    func testPercentileThresholdIsWithinABinOfTheExactPercentile() {
        var values = (0..<10_000).map { Float($0) / 10_000 }  // uniform on [0, 1)
        values.append(50)  // an outlier
        let s = statistics([values])
        let t = percentileThreshold(s, percentile: 99)!
        XCTAssertEqual(t, 0.99, accuracy: Float(s.binWidth) + 1e-4)
        let range = calibratedRange(s, method: .percentile(99), activation: .uint8)
        XCTAssertEqual(range.low, 0)
        XCTAssertEqual(range.high, t)
        XCTAssertEqual(calibratedRange(s, method: .minMax, activation: .uint8).high, 50)
    }

    func testEntropyClipsALongTailButKeepsAUniformRange() {
        // Uniform data: clipping only loses information, so the threshold stays near the max.
        let uniform = statistics([(0..<20_000).map { Float($0 % 1000) / 1000 - 0.5 }])
        XCTAssertGreaterThan(entropyThreshold(uniform, levels: 128)!, 0.45)
        // Gaussian-like bulk plus rare huge values: the threshold lands far below the max.
        var tail = (0..<20_000).map { i in Float(sin(Double(i) * 12.9898) * 0.5) }
        tail += [40, -35, 38]
        let s = statistics([tail])
        let t = entropyThreshold(s, levels: 128)!
        XCTAssertLessThan(t, 5)
        XCTAssertGreaterThan(t, 0.3)
    }

    func testAffineParametersMatchOnnxRuntimeFormula() {
        let p = AffineParams(low: -1, high: 3, type: .uint8)
        XCTAssertEqual(p.scale, 4 / 255, accuracy: 1e-9)
        XCTAssertEqual(p.zeroPoint, 64)  // round(0 - (-1) / (4/255)) = round(63.75)
        let s = AffineParams(low: -1, high: 3, type: .int8)
        XCTAssertEqual(s.zeroPoint, -64)  // round(-128 + 63.75)
        let positive = AffineParams(low: 0.5, high: 2, type: .uint8)  // the range is widened to contain 0
        XCTAssertEqual(positive.zeroPoint, 0)
        XCTAssertEqual(positive.scale, 2 / 255, accuracy: 1e-9)
        XCTAssertEqual(AffineParams(low: 0, high: 0, type: .uint8), AffineParams(scale: 1, zeroPoint: 0))
    }

    func testWeightsQuantizeSymmetricallyPerChannel() throws {
        let w = Tensor(shape: [2, 3], values: [Float](arrayLiteral: 1, -2, 0.5, 0, 0, 0))
        let perRow = try quantizeWeight(w, axis: 0)
        XCTAssertEqual(perRow.scales, [2 / 127, 1])  // an all-zero channel gets scale 1
        XCTAssertEqual(perRow.values.array(of: Int8.self), [64, -127, 32, 0, 0, 0])
        let perColumn = try quantizeWeight(Tensor(shape: [2, 2], values: [Float](arrayLiteral: 1, -4, -0.5, 2)), axis: 1)
        XCTAssertEqual(perColumn.scales, [1 / 127, 4 / 127])
        XCTAssertEqual(perColumn.values.array(of: Int8.self), [127, -127, -64, 64])
        let bias = quantizeBias(Tensor(shape: [2], values: [Float](arrayLiteral: 0.5, -1)), inputScale: 0.1, weightScales: [0.01, 0.02])
        XCTAssertEqual(bias.values.array(of: Int32.self), [500, -500])
    }

    func testSmoothQuantIsAnExactFloatRewrite() throws {
        let b = GraphBuilder()
        let h = b.node("Relu", [b.gemm("x", 16, 32, name: "fc1")])
        let y = b.gemm(b.gemm(h, 32, 24, name: "fc2", transB: true), 24, 8, name: "fc3")
        let model = b.model(shape: [4, 16], output: y)
        let x = Tensor(shape: [4, 16], values: GraphBuilder(seed: 7).random(64).map { $0 * 3 })
        let before = try model.run(x)
        let graph = model.graph.copy()
        let setup = RunSetup(opsets: model.opsetImports, irVersion: 8, session: SessionOptions(threads: 1, optimizationLevel: 0))
        let smoothed = try smoothActivations(graph, alpha: 0.5, setup: setup, source: ArrayCalibration(["x": x], graph: graph),
                                             options: QuantizeOptions(), progress: nil)
        XCTAssertEqual(smoothed.sorted(), ["fc1.weight", "fc2.weight", "fc3.weight"])
        XCTAssertEqual(graph.nodes.filter { $0.opType == "Mul" }.count, 3)
        let rewritten = Model(graph: graph, irVersion: 8, opsetImports: model.opsetImports)
        let after = try rewritten.run(x)
        assertClose(after, before, absolute: 1e-4, relative: 1e-4)
    }

    func testActivationPlanFusesReluAndSharesParametersThroughDataMovement() throws {
        let b = GraphBuilder()
        let c1 = b.conv("x", 3, 8, name: "c1")
        let r = b.node("Relu", [c1], name: "r")
        let p = b.node("MaxPool", [r], name: "pool", ["kernel_shape": .ints([2, 2]), "strides": .ints([2, 2])])
        let c2 = b.conv(p, 8, 8, name: "c2")
        let model = b.model(shape: [1, 3, 8, 8], output: c2)
        var options = QuantizeOptions()
        options.mode = .static
        let targets = try quantTargets(model.graph, options: options).targets
        XCTAssertEqual(targets.map(\.node.name), ["c1", "c2"])
        let plan = ActivationPlan(model.graph, targets: targets)
        // x (c1's input), r (the pool's input, after the fused Relu) and pool.out (c2's input); not c1's output.
        XCTAssertEqual(plan.tensors, ["x", r, p])
        XCTAssertEqual(plan.sameParameters, [p: r])
    }

    func testDynamicModeSkipsConvAndStaticModeNeedsData() throws {
        let b = GraphBuilder()
        let model = b.model(shape: [1, 3, 8, 8], output: b.conv("x", 3, 4, name: "c"))
        let report = try quantize(model, options: QuantizeOptions())
        XCTAssertTrue(report.nodes.isEmpty)
        XCTAssertTrue(report.float[0].reason.contains("ConvInteger"))
        var o = QuantizeOptions()
        o.mode = .static
        XCTAssertThrowsError(try quantize(model, options: o)) { error in
            XCTAssertTrue("\(error)".contains("needs calibration data"))
        }
    }

    func testOpsetUpgradeRefusesOpsWhoseMeaningChanged() throws {
        let b = GraphBuilder()
        let y = b.node("Softmax", [b.gemm("x", 4, 4, name: "fc")], name: "sm")
        let model = b.model(shape: [2, 4], output: y)
        model.opsetImports = [OpsetImport(domain: "", version: 12)]
        var o = QuantizeOptions()
        o.mode = .static
        let data = try ArrayCalibration(["x": Tensor(shape: [2, 4], values: [Float](repeating: 1, count: 8))], graph: model.graph)
        XCTAssertThrowsError(try quantize(model, options: o, calibration: data)) { error in
            XCTAssertTrue("\(error)".contains("Softmax"), "\(error)")
        }
        XCTAssertEqual(model.defaultOpset, 12)
        XCTAssertEqual(model.graph.nodes.map(\.opType), ["Gemm", "Softmax"])
    }
}
