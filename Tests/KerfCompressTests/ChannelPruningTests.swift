import FoundationEssentials
import XCTest
@testable import KerfCompress
import KerfCore
import KerfRuntime
import KerfTestSupport

/// Channel pruning on graphs built in code. The output-preservation tests first make the
/// channels that will go exactly zero (filters, biases, BatchNorm shift), so removing them
/// must leave the outputs unchanged up to float reassociation.
final class ChannelPruningTests: XCTestCase {
    private func options(_ sparsity: Double = 0.5, criterion: ChannelCriterion = .l1, exclude: [String] = []) -> PruneOptions {
        var o = PruneOptions()
        o.method = .channel
        o.sparsity = sparsity
        o.channelCriterion = criterion
        o.exclude = NameFilter(exclude)
        return o
    }

    private func input(_ shape: [Int], seed: UInt64 = 7) -> Tensor {
        Tensor(shape: shape, values: GraphBuilder(seed: seed).random(shape.reduce(1, *)))
    }

    /// `a` and `b` agree within `tolerance` times the largest magnitude in `b` (at least 1).
    private func assertClose(_ a: [Float], _ b: [Float], _ tolerance: Float = 1e-4, file: StaticString = #filePath, line: UInt = #line) {
        let scale = max(1, b.map(abs).max() ?? 0)
        KerfTestSupport.assertClose(a, b, absolute: Double(tolerance * scale), file: file, line: line)
    }

    /// Keeps a copy of `model`, prunes it, and checks the outputs did not change.
    @discardableResult
    private func pruneKeepingOutputs(_ model: Model, _ x: Tensor, _ o: PruneOptions,
                                     file: StaticString = #filePath, line: UInt = #line) throws -> PruneReport {
        let before = try model.run(x)
        let report = try prune(model, options: o)
        assertClose(try model.run(x), before, file: file, line: line)
        // What is saved loads and runs the same.
        assertClose(try model.copy().run(x), before, file: file, line: line)
        return report
    }

    private func shapes(_ m: Model, _ names: [String]) -> [[Int]] { names.map { m.initializer($0).shape } }

    // MARK: - CNN

    /// x[1,3,8,8] -> Conv(8)-BN-Relu -> Conv(16)-Relu -> GAP -> Flatten -> Gemm(10)
    private func cnn() -> Model {
        let b = GraphBuilder()
        var h = b.conv("x", 3, 8, name: "conv1")
        h = b.node("Relu", [b.batchNorm(h, 8, name: "bn1")])
        h = b.node("Relu", [b.conv(h, 8, 16, name: "conv2")])
        h = b.node("Flatten", [b.node("GlobalAveragePool", [h])])
        return b.model(shape: [1, 3, 8, 8], output: b.gemm(h, 16, 10, name: "fc"))
    }

    func testCNNLosesHalfItsChannelsAndKeepsItsOutputs() throws {
        let m = cnn()
        let gone1 = [1, 4, 5, 6], gone2 = [0, 3, 7, 8, 9, 10, 12, 15]
        m.fill("conv1.weight", axis: 0, channels: gone1)
        m.fill("conv1.bias", axis: 0, channels: gone1)
        m.fill("bn1.B", axis: 0, channels: gone1)
        m.fill("bn1.mean", axis: 0, channels: gone1)
        m.fill("conv2.weight", axis: 0, channels: gone2)
        m.fill("conv2.bias", axis: 0, channels: gone2)
        let w1 = m.initializer("conv1.weight").array(of: Float.self), fc = m.initializer("fc.weight").array(of: Float.self)

        let report = try pruneKeepingOutputs(m, input([1, 3, 8, 8]), options())

        XCTAssertEqual(shapes(m, ["conv1.weight", "conv1.bias", "bn1.scale", "bn1.var", "conv2.weight", "conv2.bias", "fc.weight", "fc.bias"]),
                       [[4, 3, 3, 3], [4], [4], [4], [8, 4, 3, 3], [8], [8, 10], [10]])
        // The kept filters are the original ones, in order.
        let kept1 = (0..<8).filter { !gone1.contains($0) }
        XCTAssertEqual(m.initializer("conv1.weight").array(of: Float.self), kept1.flatMap { w1[$0 * 27..<($0 + 1) * 27] })
        let kept2 = (0..<16).filter { !gone2.contains($0) }
        XCTAssertEqual(m.initializer("fc.weight").array(of: Float.self), kept2.flatMap { fc[$0 * 10..<($0 + 1) * 10] })
        XCTAssertEqual(Set(report.tensors.map(\.name)),
                       ["conv1.weight", "conv1.bias", "bn1.scale", "bn1.B", "bn1.mean", "bn1.var", "conv2.weight", "conv2.bias", "fc.weight"])
        XCTAssertEqual(report.tensors.first { $0.name == "conv2.weight" }?.shapeBefore, [16, 8, 3, 3])
        // The classifier's outputs are the graph output: left alone, and said so.
        XCTAssertTrue(report.skipped.contains { $0.name == "fc.weight" && $0.reason.contains("graph output") }, "\(report.skipped)")
        XCTAssertLessThan(report.parametersAfter, report.parametersBefore)
        XCTAssertLessThan(report.bytesAfter, report.bytesBefore)
    }

    func testBatchNormGammaCriterionRemovesTheSmallestScales() throws {
        let m = cnn()
        // Tiny |gamma| on channels whose filters are large: gamma decides, L1 would not.
        let small = [0, 2, 3, 7]
        m.fill("bn1.scale", axis: 0, channels: small, with: 1e-3)
        m.fill("conv1.weight", axis: 0, channels: small, with: 5)
        let w = m.initializer("conv1.weight").array(of: Float.self)
        _ = try prune(m, options: options(criterion: .batchNormGamma))
        let kept = [1, 4, 5, 6]
        XCTAssertEqual(m.initializer("conv1.weight").array(of: Float.self), kept.flatMap { w[$0 * 27..<($0 + 1) * 27] })

        let l1 = cnn()
        l1.fill("bn1.scale", axis: 0, channels: small, with: 1e-3)
        l1.fill("conv1.weight", axis: 0, channels: small, with: 5)
        _ = try prune(l1, options: options(criterion: .l1))
        XCTAssertEqual(l1.initializer("conv1.weight").array(of: Float.self), small.flatMap { w[$0 * 27..<($0 + 1) * 27] })
    }

    func testValueInfoShapesFollowThePruning() throws {
        let b = GraphBuilder()
        let c1 = b.conv("x", 3, 8, name: "conv1")
        b.declare(c1, [1, 8, 8, 8])
        let r = b.node("Relu", [c1])
        let m = b.model(shape: [1, 3, 8, 8], output: b.conv(r, 8, 4, name: "conv2"))
        _ = try prune(m, options: options(0.25))
        XCTAssertEqual(m.graph.valueInfo.first { $0.name == c1 }?.shape, [.value(1), .value(6), .value(8), .value(8)])
        XCTAssertEqual(m.initializer("conv2.weight").shape, [4, 6, 3, 3])
    }

    // MARK: - MLP

    /// x[2,16] -> Gemm(32)-Relu -> Gemm(24, transB)-Relu -> Gemm(5)
    func testMLPHiddenUnitsAreRemoved() throws {
        let b = GraphBuilder()
        var h = b.node("Relu", [b.gemm("x", 16, 32, name: "fc1")])
        h = b.node("Relu", [b.gemm(h, 32, 24, name: "fc2", transB: true)])
        let m = b.model(shape: [2, 16], output: b.gemm(h, 24, 5, name: "fc3"))
        let gone1 = Array(stride(from: 0, to: 32, by: 2)), gone2 = [1, 2, 3, 5, 8, 13, 21, 23, 0, 4, 6, 7]
        m.fill("fc1.weight", axis: 1, channels: gone1)
        m.fill("fc1.bias", axis: 0, channels: gone1)
        m.fill("fc2.weight", axis: 0, channels: gone2)  // transB: rows are the units
        m.fill("fc2.bias", axis: 0, channels: gone2)
        try pruneKeepingOutputs(m, input([2, 16]), options())
        XCTAssertEqual(shapes(m, ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias", "fc3.weight", "fc3.bias"]),
                       [[16, 16], [16], [12, 16], [12], [12, 5], [5]])
    }

    /// x[2,4,16] -> MatMul(32)+Add -> Relu -> MatMul(8)+Add: a transformer-style FFN.
    func testMatMulWithBiasAddIsPruned() throws {
        let b = GraphBuilder()
        let w1 = b.constant("w1", [16, 32]), b1 = b.constant("b1", [32])
        let h = b.node("Relu", [b.node("Add", [b.node("MatMul", ["x", w1]), b1])])
        let out = b.node("Add", [b.node("MatMul", [h, b.constant("w2", [32, 8])]), b.constant("b2", [8])])
        let m = b.model(shape: [2, 4, 16], output: out)
        let gone = Array(16..<32)
        m.fill("w1", axis: 1, channels: gone)
        m.fill("b1", axis: 0, channels: gone)
        try pruneKeepingOutputs(m, input([2, 4, 16]), options())
        XCTAssertEqual(shapes(m, ["w1", "b1", "w2", "b2"]), [[16, 16], [16], [16, 8], [8]])
    }

    // MARK: - Residual ties

    /// stem Conv(8)-Relu = r; r -> Conv(8)-Relu -> Conv(8) = t; Relu(r + t) -> GAP -> Flatten -> Gemm
    private func residual() -> Model {
        let b = GraphBuilder(seed: 3)
        let r = b.node("Relu", [b.conv("x", 4, 8, name: "stem")])
        let t = b.conv(b.node("Relu", [b.conv(r, 8, 8, name: "a")]), 8, 8, name: "b")
        let y = b.node("Relu", [b.node("Add", [r, t], name: "residual")])
        return b.model(shape: [1, 4, 6, 6], output: b.gemm(b.node("Flatten", [b.node("GlobalAveragePool", [y])]), 8, 3, name: "fc"))
    }

    func testResidualAddPrunesTiedConvsAlike() throws {
        let m = residual()
        let gone = [2, 3, 5, 6], goneA = [0, 1, 2, 7]
        for w in ["stem", "b"] {
            m.fill("\(w).weight", axis: 0, channels: gone)
            m.fill("\(w).bias", axis: 0, channels: gone)
        }
        m.fill("a.weight", axis: 0, channels: goneA)
        m.fill("a.bias", axis: 0, channels: goneA)
        let stem = m.initializer("stem.weight").array(of: Float.self), bw = m.initializer("b.weight").array(of: Float.self)
        try pruneKeepingOutputs(m, input([1, 4, 6, 6]), options())
        XCTAssertEqual(shapes(m, ["stem.weight", "a.weight", "b.weight", "fc.weight"]), [[4, 4, 3, 3], [4, 4, 3, 3], [4, 4, 3, 3], [4, 3]])
        let kept = [0, 1, 4, 7]
        XCTAssertEqual(m.initializer("stem.weight").array(of: Float.self), kept.flatMap { stem[$0 * 36..<($0 + 1) * 36] })
        // b's filters: the tied channels, each over a's kept input channels [3, 4, 5, 6].
        var expected: [Float] = []
        for o in kept { for c in [3, 4, 5, 6] { expected += bw[(o * 8 + c) * 9..<(o * 8 + c + 1) * 9] } }
        XCTAssertEqual(m.initializer("b.weight").array(of: Float.self), expected)
    }

    /// Exporters store identical tensors once and fan them out, through Identity nodes
    /// (TorchScript) or directly (dynamo): here one zero bias feeds three convolutions (`a`
    /// through Identity, `stem` and `b` directly). Each reader gets its own copy to prune, and
    /// copies still equal afterwards are stored once again.
    func testSharedBiasIsPrunedPerReader() throws {
        let b = GraphBuilder(seed: 5)
        let zero = b.constant("shared.bias", [8], [Float](repeating: 0, count: 8))
        let biasA = b.node("Identity", [zero], name: "bias_a"), biasB = zero
        func conv(_ x: String, _ c: Int, _ name: String, _ bias: String) -> String {
            b.node("Conv", [x, b.constant("\(name).weight", [8, c, 3, 3]), bias], name: name, ["pads": .ints([1, 1, 1, 1])])
        }
        let r = b.node("Relu", [conv("x", 4, "stem", zero)])
        let t = conv(b.node("Relu", [conv(r, 8, "a", biasA)]), 8, "b", biasB)
        let y = b.node("Relu", [b.node("Add", [r, t])])
        let m = b.model(shape: [1, 4, 6, 6], output: b.gemm(b.node("Flatten", [b.node("GlobalAveragePool", [y])]), 8, 3, name: "fc"))
        for w in ["stem", "b"] { m.fill("\(w).weight", axis: 0, channels: [2, 3, 5, 6]) }
        m.fill("a.weight", axis: 0, channels: [0, 1, 2, 7])

        let report = try pruneKeepingOutputs(m, input([1, 4, 6, 6]), options())

        XCTAssertFalse(m.graph.nodes.contains { $0.opType == "Identity" })
        XCTAssertEqual(shapes(m, ["stem.weight", "a.weight", "b.weight", "fc.weight"]), [[4, 4, 3, 3], [4, 4, 3, 3], [4, 4, 3, 3], [4, 3]])
        // All three pruned biases are four zeros: one initializer again, read by every Conv.
        let biases = Set(m.graph.nodes.filter { $0.opType == "Conv" }.map { $0.inputs[2] })
        XCTAssertEqual(biases.count, 1, "\(biases)")
        XCTAssertEqual(biases.first.map { m.initializer($0).shape }, [4])
        XCTAssertFalse(report.skipped.contains { $0.reason.contains("shared") || $0.reason.contains("not a constant") }, "\(report.skipped)")
    }

    func testTiedGroupScoresAreSummedOverItsMembers() throws {
        // Channel 0 is zero in the stem only; b's filter 0 is the largest, so the group keeps it.
        let m = residual()
        m.fill("stem.weight", axis: 0, channels: [0])
        m.fill("b.weight", axis: 0, channels: [0], with: 10)
        _ = try prune(m, options: options(0.5))
        XCTAssertEqual(m.initializer("stem.weight").shape, [4, 4, 3, 3])
        XCTAssertTrue(m.initializer("stem.weight").array(of: Float.self)[0..<36].allSatisfy { $0 == 0 }, "channel 0 is kept, first")
        XCTAssertTrue(m.initializer("b.weight").array(of: Float.self)[0..<36].allSatisfy { $0 == 10 }, "channel 0 is kept, first")
    }

    func testResidualWithAnUntrackedOperandIsLeftAlone() throws {
        // y = Conv(x) + x: x is the graph input, its channels cannot change.
        let b = GraphBuilder()
        let y = b.node("Add", [b.conv("x", 4, 4, name: "conv"), "x"])
        let m = b.model(shape: [1, 4, 5, 5], output: b.node("Relu", [y]))
        let report = try prune(m, options: options())
        XCTAssertTrue(report.tensors.isEmpty)
        XCTAssertEqual(report.skipped.map(\.name), ["conv.weight"])
        XCTAssertTrue(report.skipped[0].reason.contains("'x'"), report.skipped[0].reason)
    }

    // MARK: - Rewrites through other ops

    /// A ConvNeXt block: the residual width goes channels-last through Transpose, is normalized
    /// by LayerNorm over the channels, expanded and projected back by MatMuls, scaled per
    /// channel, and added to the block's input. `normalizedAxis` 1 normalizes H, W and C
    /// together, which pruning cannot follow.
    private func convNeXtBlock(normalizedAxis: Int64 = -1) -> Model {
        let b = GraphBuilder()
        let stem = b.conv("x", 3, 8, name: "stem")
        let last = b.node("Transpose", [stem], ["perm": .ints([0, 2, 3, 1])])
        let scaleShape = normalizedAxis == -1 ? [8] : [6, 6, 8]
        let norm = b.node("LayerNormalization", [last, b.constant("ln.scale", scaleShape), b.constant("ln.bias", scaleShape)],
                          name: "ln", ["axis": .int(normalizedAxis)])
        let hidden = b.node("Relu", [b.node("MatMul", [norm, b.constant("fc1.weight", [8, 16])], name: "fc1")])
        let scaled = b.node("Mul", [b.node("MatMul", [hidden, b.constant("fc2.weight", [16, 8])], name: "fc2"), b.constant("gamma", [8])])
        let back = b.node("Transpose", [scaled], ["perm": .ints([0, 3, 1, 2])])
        return b.model(shape: [1, 3, 6, 6], output: b.conv(b.node("Add", [stem, back]), 8, 4, name: "head"))
    }

    func testResidualWidthIsPrunedThroughTransposeAndLayerNorm() throws {
        let m = convNeXtBlock()
        let report = try prune(m, options: options())
        XCTAssertEqual(shapes(m, ["stem.weight", "ln.scale", "ln.bias", "fc1.weight", "fc2.weight", "gamma", "head.weight"]),
                       [[4, 3, 3, 3], [4], [4], [4, 8], [8, 4], [4], [4, 4, 3, 3]])
        XCTAssertLessThan(report.parametersAfter, report.parametersBefore)
        let y = try m.run(input([1, 3, 6, 6]))
        XCTAssertEqual(y.count, 4 * 36)
        XCTAssertEqual(try m.copy().run(input([1, 3, 6, 6])), y, "what is saved loads and runs the same")
    }

    func testLayerNormOverMoreAxesThanTheChannelsKeepsThem() throws {
        let m = convNeXtBlock(normalizedAxis: 1)
        try prune(m, options: options())
        XCTAssertEqual(shapes(m, ["stem.weight", "ln.scale", "gamma", "head.weight"]), [[8, 3, 3, 3], [6, 6, 8], [8], [4, 8, 3, 3]])
        XCTAssertEqual(shapes(m, ["fc1.weight", "fc2.weight"]), [[8, 8], [8, 8]], "the hidden width is still pruned")
    }

    func testDepthwiseConvFollowsItsInputChannels() throws {
        // Conv(8) -> Relu -> depthwise Conv(group 8) -> Relu -> Conv 1x1(6)
        let b = GraphBuilder(seed: 11)
        var h = b.node("Relu", [b.conv("x", 3, 8, name: "conv1")])
        h = b.node("Relu", [b.conv(h, 8, 8, name: "dw", group: 8)])
        let m = b.model(shape: [1, 3, 6, 6], output: b.conv(h, 8, 6, name: "pw", kernel: 1))
        let gone = [0, 2, 4, 6]
        for w in ["conv1.weight", "conv1.bias", "dw.bias"] { m.fill(w, axis: 0, channels: gone) }
        try pruneKeepingOutputs(m, input([1, 3, 6, 6]), options())
        XCTAssertEqual(shapes(m, ["conv1.weight", "dw.weight", "dw.bias", "pw.weight"]), [[4, 3, 3, 3], [4, 1, 3, 3], [4], [6, 4, 1, 1]])
        XCTAssertEqual(m.graph.nodes.first { $0.name == "dw" }?.int("group", default: 0), 4)
    }

    func testFlattenOfASpatialMapSlicesBlocksOfTheNextGemm() throws {
        // Conv(6) -> Relu [1,6,3,3] -> Flatten [1,54] -> Gemm(4): channel c owns rows 9c..<9c+9.
        let b = GraphBuilder(seed: 5)
        let h = b.node("Relu", [b.conv("x", 2, 6, name: "conv")])
        b.declare(h, [1, 6, 3, 3])
        let m = b.model(shape: [1, 2, 3, 3], output: b.gemm(b.node("Flatten", [h]), 54, 4, name: "fc"))
        let gone = [1, 2, 5]
        m.fill("conv.weight", axis: 0, channels: gone)
        m.fill("conv.bias", axis: 0, channels: gone)
        try pruneKeepingOutputs(m, input([1, 2, 3, 3]), options())
        XCTAssertEqual(shapes(m, ["conv.weight", "fc.weight"]), [[3, 2, 3, 3], [27, 4]])
    }

    func testFlattenWithoutDeclaredShapesUsesInferredShapes() throws {
        // Conv(6, stride 2) -> Relu -> Flatten -> Gemm with no value_info: the [2, 6, 3, 3] map
        // behind the Flatten is known by static inference only.
        let b = GraphBuilder(seed: 6)
        let h = b.node("Relu", [b.conv("x", 2, 6, name: "conv", stride: 2)])
        let m = b.model(shape: [2, 2, 6, 6], output: b.gemm(b.node("Flatten", [h]), 54, 4, name: "fc"))
        XCTAssertTrue(m.graph.valueInfo.isEmpty)
        let gone = [0, 3, 4]
        m.fill("conv.weight", axis: 0, channels: gone)
        m.fill("conv.bias", axis: 0, channels: gone)
        let report = try pruneKeepingOutputs(m, input([2, 2, 6, 6]), options())
        XCTAssertEqual(report.skipped.map(\.name), ["fc.weight"], "only the output layer stays whole")
        XCTAssertEqual(shapes(m, ["conv.weight", "conv.bias", "fc.weight"]), [[3, 2, 3, 3], [3], [27, 4]])
    }

    func testReshapeToBatchByFeaturesRewritesItsTarget() throws {
        // Conv(8) -> GAP -> Reshape [-1, 8] -> Gemm(3): the 8 becomes 4.
        let b = GraphBuilder(seed: 9)
        let g = b.node("GlobalAveragePool", [b.node("Relu", [b.conv("x", 3, 8, name: "conv")])])
        let r = b.node("Reshape", [g, b.int64("target", [-1, 8])])
        let m = b.model(shape: [2, 3, 4, 4], output: b.gemm(r, 8, 3, name: "fc"))
        let gone = [0, 1, 6, 7]
        m.fill("conv.weight", axis: 0, channels: gone)
        m.fill("conv.bias", axis: 0, channels: gone)
        try pruneKeepingOutputs(m, input([2, 3, 4, 4]), options())
        XCTAssertEqual(m.initializer("target").array(of: Int64.self), [-1, 4])
        XCTAssertEqual(m.initializer("fc.weight").shape, [4, 3])
    }

    func testSpatialMeanWithoutKeepdimsFeedsTheClassifier() throws {
        // Conv(8) -> Relu -> ReduceMean(axes 2, 3; keepdims 0) [N, 8] -> Gemm(3)
        let b = GraphBuilder(seed: 17)
        let h = b.node("Relu", [b.conv("x", 3, 8, name: "conv")])
        let mean = b.node("ReduceMean", [h], ["axes": .ints([2, 3]), "keepdims": .int(0)])
        let m = b.model(shape: [2, 3, 4, 4], output: b.gemm(mean, 8, 3, name: "fc"))
        let gone = [0, 3, 4, 6]
        m.fill("conv.weight", axis: 0, channels: gone)
        m.fill("conv.bias", axis: 0, channels: gone)
        try pruneKeepingOutputs(m, input([2, 3, 4, 4]), options())
        XCTAssertEqual(shapes(m, ["conv.weight", "fc.weight"]), [[4, 3, 3, 3], [4, 3]])
    }

    func testSqueezeExciteMulTiesTheGateToTheFeatures() throws {
        // f = Relu(Conv(8)); s = Sigmoid(Conv1x1(8)(Relu(Conv1x1(4)(GAP(f))))); y = f * s
        let b = GraphBuilder(seed: 13)
        let f = b.node("Relu", [b.conv("x", 3, 8, name: "conv")])
        let squeeze = b.node("Relu", [b.conv(b.node("GlobalAveragePool", [f]), 8, 4, name: "se1", kernel: 1)])
        let gate = b.node("Sigmoid", [b.conv(squeeze, 4, 8, name: "se2", kernel: 1)])
        let y = b.node("Mul", [f, gate])
        let m = b.model(shape: [1, 3, 5, 5], output: b.conv(y, 8, 2, name: "head", kernel: 1))
        let gone = [1, 3, 5, 7]
        for w in ["conv.weight", "conv.bias", "se2.weight", "se2.bias"] { m.fill(w, axis: 0, channels: gone) }
        for w in ["se1.weight", "se1.bias"] { m.fill(w, axis: 0, channels: [0, 1]) }
        try pruneKeepingOutputs(m, input([1, 3, 5, 5]), options())
        XCTAssertEqual(shapes(m, ["conv.weight", "se1.weight", "se2.weight", "head.weight"]),
                       [[4, 3, 3, 3], [2, 4, 1, 1], [4, 2, 1, 1], [2, 4, 1, 1]])
    }

    // MARK: - Attention heads

    /// x[1,5,8] -> BERT-style self-attention (4 heads of 2, the torch export pattern: shapes
    /// from Shape/Gather/Unsqueeze/Concat) -> output projection + bias + residual.
    private func attention(mask: [Int] = [1, 1, 1, 5]) -> Model {
        let b = GraphBuilder(seed: 21)
        let batch = b.dim(of: "x", 0), seq = b.dim(of: "x", 1)
        let split = b.node("Concat", [batch, seq, b.int64("heads", [4]), b.int64("head_size", [2])], name: "split_shape", ["axis": .int(0)])
        func heads(_ name: String, _ perm: [Int64]) -> String {
            let lin = b.node("Add", [b.node("MatMul", ["x", b.constant("w\(name)", [8, 8])]), b.constant("b\(name)", [8])])
            return b.node("Transpose", [b.node("Reshape", [lin, split])], ["perm": .ints(perm)])
        }
        let q = heads("q", [0, 2, 1, 3]), k = heads("k", [0, 2, 3, 1]), v = heads("v", [0, 2, 1, 3])
        let scaled = b.node("Div", [b.node("MatMul", [q, k]), b.constant("sqrt_d", [], [Float(2).squareRoot()])])
        let masked = b.node("Add", [scaled, b.constant("mask", mask)])
        let context = b.node("MatMul", [b.node("Softmax", [masked], ["axis": .int(-1)]), v])
        let merged = b.node("Concat", [batch, seq, b.int64("width", [8])], ["axis": .int(0)])
        let flat = b.node("Reshape", [b.node("Transpose", [context], ["perm": .ints([0, 2, 1, 3])]), merged])
        let out = b.node("Add", [b.node("MatMul", [flat, b.constant("wo", [8, 8])]), b.constant("bo", [8])])
        return b.model(shape: [1, 5, 8], output: b.node("Add", [out, "x"]))
    }

    func testAttentionHeadsAreRemovedWhole() throws {
        let m = attention()
        // Heads 1 and 2 (units 2..<6) do nothing: their V is zero, so is their share of Wo.
        let gone = [2, 3, 4, 5]
        for w in ["wq", "wk", "wv"] { m.fill(w, axis: 1, channels: gone) }
        for w in ["bq", "bk", "bv", "wo"] { m.fill(w, axis: 0, channels: gone) }
        let wo = m.initializer("wo").array(of: Float.self)
        let report = try pruneKeepingOutputs(m, input([1, 5, 8]), options())
        XCTAssertEqual(shapes(m, ["wq", "bq", "wk", "bk", "wv", "bv", "wo", "bo"]), [[8, 4], [4], [8, 4], [4], [8, 4], [4], [4, 8], [8]])
        XCTAssertEqual(m.initializer("heads").array(of: Int64.self), [2])
        XCTAssertEqual(m.initializer("head_size").array(of: Int64.self), [2])
        XCTAssertEqual(m.initializer("width").array(of: Int64.self), [4])
        XCTAssertEqual(m.initializer("wo").array(of: Float.self), Array(wo[0..<16] + wo[48..<64]))
        // The projections are pruned per head, so they are not reported as left alone.
        XCTAssertFalse(report.skipped.contains { ["wq", "wk", "wv"].contains($0.name) }, "\(report.skipped)")
    }

    /// x[1,5,8] -> self-attention as torch exports `scaled_dot_product_attention` (4 heads of
    /// 2): split shapes with -1 heads, q and k each scaled, probabilities through
    /// Where(IsNaN(p), 0, p), Shape readers, a `view(B, -1, S, d)` of the context and merge
    /// shapes from run time. `dynamoKey`: k's transpose as the dynamo exporter writes it, heads
    /// folded into the batch ([B*H, S, d] -> Transpose(0,2,1) -> [B, H, d, S]).
    /// `constantShapes`: as the exporters write Whisper's attention, with fixed shapes
    /// ([-1, 5, 4, 2] splits, [-1, 4, 5, 2] and [-1, 5, 8] on the way out) and q scaled
    /// before the split.
    /// `positionBias`: T5's relative position bias added to the scores, one row per head:
    /// Gather(table [3 buckets, 4 heads], buckets [5, 5]) -> Transpose(2, 0, 1) -> Unsqueeze(0),
    /// plus the mask.
    private func sdpaAttention(dynamoKey: Bool, constantShapes: Bool = false, mask: [Int] = [1, 1, 1, 5],
                               positionBias: Bool = false) -> Model {
        let b = GraphBuilder(seed: 22)
        let batch = b.dim(of: "x", 0), seq = b.dim(of: "x", 1)
        let minusOne = b.int64("minus_one", [-1])
        let split = constantShapes ? b.int64("split_shape", [-1, 5, 4, 2])
            : b.node("Concat", [batch, seq, minusOne, b.int64("head_size", [2])], name: "split_shape", ["axis": .int(0)])
        let scale = b.constant("scale", [], [Float(0.5).squareRoot().squareRoot() * 1.3])
        func heads(_ name: String, _ perm: [Int64]) -> String {
            var lin = b.node("Add", [b.node("MatMul", ["x", b.constant("w\(name)", [8, 8])]), b.constant("b\(name)", [8])])
            if constantShapes && name == "q" { lin = b.node("Mul", [lin, scale]) }
            return b.node("Transpose", [b.node("Reshape", [lin, split])], ["perm": .ints(perm)])
        }
        let q = heads("q", [0, 2, 1, 3]), v = heads("v", [0, 2, 1, 3])
        var k: String
        if dynamoKey {
            let k4 = heads("k", [0, 2, 1, 3])
            let shape = b.node("Shape", [k4])
            func slice(_ start: Int64, _ end: Int64) -> String {
                b.node("Slice", [shape, b.int64("start\(b.nodes.count)", [start]), b.int64("end\(b.nodes.count)", [end])])
            }
            let last = slice(-1, Int64.max), secondLast = slice(-2, -1), lead = slice(Int64.min, -2)
            let flat = b.node("Reshape", [k4, b.node("Concat", [minusOne, secondLast, last], ["axis": .int(0)])])
            let swapped = b.node("Transpose", [flat], ["perm": .ints([0, 2, 1])])
            k = b.node("Reshape", [swapped, b.node("Concat", [lead, last, secondLast], ["axis": .int(0)])])
        } else {
            k = heads("k", [0, 2, 3, 1])
        }
        let scores = b.node("MatMul", [b.node("Mul", [q, scale]), b.node("Mul", [k, scale])])
        var bias = b.constant("mask", mask)
        if positionBias {
            let buckets = b.node("Reshape", [b.int64("buckets", (0..<25).map { Int64($0 % 3) }), b.int64("bucket_shape", [5, 5])])
            let perHead = b.node("Transpose", [b.node("Gather", [b.constant("position_table", [3, 4]), buckets], ["axis": .int(0)])],
                                 ["perm": .ints([2, 0, 1])])
            bias = b.node("Add", [b.node("Unsqueeze", [perHead, b.int64("bias_axes", [0])]), bias])
        }
        let p = b.node("Softmax", [b.node("Add", [scores, bias])], ["axis": .int(-1)])
        let probabilities = b.node("Where", [b.node("IsNaN", [p]), b.constant("zero", [1], [0]), p])
        let context = b.node("MatMul", [probabilities, v])
        let view = constantShapes ? b.int64("view_shape", [-1, 4, 5, 2])
            : b.node("Concat", [b.dim(of: context, 0), minusOne, b.dim(of: q, 2), b.dim(of: v, 3)], ["axis": .int(0)])
        let viewed = b.node("Reshape", [context, view])
        let merged = constantShapes ? b.int64("merged_shape", [-1, 5, 8]) : b.node("Concat", [batch, seq, minusOne], ["axis": .int(0)])
        let flat = b.node("Reshape", [b.node("Transpose", [viewed], ["perm": .ints([0, 2, 1, 3])]), merged])
        let out = b.node("Add", [b.node("MatMul", [flat, b.constant("wo", [8, 8])]), b.constant("bo", [8])])
        return b.model(shape: [1, 5, 8], output: b.node("Add", [out, "x"]))
    }

    func testAttentionHeadsOfTorchScaledDotProductAttentionAreRemoved() throws {
        for (dynamoKey, constantShapes) in [(false, false), (true, false), (true, true)] {
            let m = sdpaAttention(dynamoKey: dynamoKey, constantShapes: constantShapes)
            let gone = [2, 3, 4, 5]
            for w in ["wq", "wk", "wv"] { m.fill(w, axis: 1, channels: gone) }
            for w in ["bq", "bk", "bv", "wo"] { m.fill(w, axis: 0, channels: gone) }
            let report = try pruneKeepingOutputs(m, input([1, 5, 8]), options())
            XCTAssertEqual(shapes(m, ["wq", "bq", "wk", "bk", "wv", "bv", "wo", "bo"]),
                           [[8, 4], [4], [8, 4], [4], [8, 4], [4], [4, 8], [8]], "dynamoKey \(dynamoKey)")
            XCTAssertEqual(m.initializer("minus_one").array(of: Int64.self), [-1])
            if constantShapes {
                XCTAssertEqual(m.initializer("split_shape").array(of: Int64.self), [-1, 5, 2, 2])
                XCTAssertEqual(m.initializer("view_shape").array(of: Int64.self), [-1, 2, 5, 2])
                XCTAssertEqual(m.initializer("merged_shape").array(of: Int64.self), [-1, 5, 4])
            } else {
                XCTAssertEqual(m.initializer("head_size").array(of: Int64.self), [2])
            }
            XCTAssertFalse(report.skipped.contains { ["wq", "wk", "wv"].contains($0.name) }, "\(report.skipped)")
        }
    }

    func testAPositionBiasWithOneRowPerHeadLosesTheRemovedHeadsRows() throws {
        let m = sdpaAttention(dynamoKey: false, positionBias: true)
        let gone = [2, 3, 4, 5]
        for w in ["wq", "wk", "wv"] { m.fill(w, axis: 1, channels: gone) }
        for w in ["bq", "bk", "bv", "wo"] { m.fill(w, axis: 0, channels: gone) }
        let table = m.initializer("position_table").array(of: Float.self)
        let report = try pruneKeepingOutputs(m, input([1, 5, 8]), options())
        XCTAssertEqual(shapes(m, ["wq", "wo", "position_table"]), [[8, 4], [4, 8], [3, 2]])
        XCTAssertEqual(m.initializer("position_table").array(of: Float.self), (0..<3).flatMap { [table[$0 * 4], table[$0 * 4 + 3]] })
        XCTAssertFalse(report.skipped.contains { $0.name == "wq" }, "\(report.skipped)")
    }

    func testScaledDotProductAttentionWithAPerHeadBiasIsLeftAlone() throws {
        let m = sdpaAttention(dynamoKey: false, mask: [1, 4, 1, 5])
        let report = try prune(m, options: options())
        XCTAssertEqual(m.initializer("wq").shape, [8, 8])
        XCTAssertTrue(report.skipped.contains { $0.name == "wq" }, "\(report.skipped)")
    }

    /// x[1,5,8] -> GPT-2's attention as torch exports it: one Gemm for Q, K and V (8 -> 24)
    /// between the Conv1D Reshapes, a Split into three, 4 heads of 2, and Gemm back to 8.
    private func fusedAttention() -> Model {
        let b = GraphBuilder(seed: 24)
        let batch = b.dim(of: "x", 0), seq = b.dim(of: "x", 1)
        let qkv = b.gemm(b.node("Reshape", ["x", b.int64("rows", [-1, 8])]), 8, 24, name: "c_attn")
        let wide = b.node("Reshape", [qkv, b.node("Concat", [batch, seq, b.int64("fused_width", [24])], ["axis": .int(0)])])
        let parts = ["q", "k", "v"].map { "\($0)_part" }
        b.nodes.append(Node(name: "split", opType: "Split", inputs: [wide, b.int64("sizes", [8, 8, 8])], outputs: parts,
                            attributes: [Attribute(name: "axis", value: .int(2))]))
        let split = b.node("Concat", [batch, seq, b.int64("minus_one", [-1]), b.int64("head_size", [2])], ["axis": .int(0)])
        func heads(_ part: String, _ perm: [Int64]) -> String {
            b.node("Transpose", [b.node("Reshape", [part, split])], ["perm": .ints(perm)])
        }
        let q = heads(parts[0], [0, 2, 1, 3]), k = heads(parts[1], [0, 2, 3, 1]), v = heads(parts[2], [0, 2, 1, 3])
        let scores = b.node("Div", [b.node("MatMul", [q, k]), b.constant("sqrt_d", [], [Float(2).squareRoot()])])
        let context = b.node("MatMul", [b.node("Softmax", [scores], ["axis": .int(-1)]), v])
        let merged = b.node("Reshape", [b.node("Transpose", [context], ["perm": .ints([0, 2, 1, 3])]),
                                        b.node("Concat", [batch, seq, b.int64("minus_one_merge", [-1])], ["axis": .int(0)])])
        let projected = b.gemm(b.node("Reshape", [merged, b.int64("flat", [-1, 8])]), 8, 8, name: "c_proj")
        return b.model(shape: [1, 5, 8], output: b.node("Add", [b.node("Reshape", [projected, b.int64("back", [1, 5, 8])]), "x"]))
    }

    func testHeadsOfAFusedQKVProjectionAreRemovedInEverySegment() throws {
        let m = fusedAttention()
        // Heads 1 and 2 of Q, K and V (units 2..<6 of each 8-unit segment) do nothing.
        let gone = [0, 8, 16].flatMap { s in (2..<6).map { s + $0 } }
        m.fill("c_attn.weight", axis: 1, channels: gone)
        m.fill("c_attn.bias", axis: 0, channels: gone)
        m.fill("c_proj.weight", axis: 0, channels: Array(2..<6))
        let report = try pruneKeepingOutputs(m, input([1, 5, 8]), options())
        XCTAssertEqual(shapes(m, ["c_attn.weight", "c_attn.bias", "c_proj.weight", "c_proj.bias"]), [[8, 12], [12], [4, 8], [8]])
        XCTAssertEqual(m.initializer("sizes").array(of: Int64.self), [4, 4, 4])
        XCTAssertEqual(m.initializer("fused_width").array(of: Int64.self), [12])
        XCTAssertEqual(m.initializer("flat").array(of: Int64.self), [-1, 4])
        XCTAssertFalse(report.skipped.contains { $0.name == "c_attn.weight" }, "\(report.skipped)")
    }

    func testAttentionWithAPerHeadBiasIsLeftAlone() throws {
        // A [1, 4, 1, 5] bias differs per head: removing a head would need slicing it too.
        let m = attention(mask: [1, 4, 1, 5])
        let report = try prune(m, options: options())
        XCTAssertEqual(m.initializer("wq").shape, [8, 8])
        XCTAssertTrue(report.skipped.contains { $0.name == "wq" && $0.reason.contains("Reshape") }, "\(report.skipped)")
    }

    // MARK: - Reshapes around Gemm (GPT-2's Conv1D)

    /// x[1,5,8] -> two feed-forward blocks as torch exports GPT-2's Conv1D: Reshape to
    /// [B*S, 8], Gemm to 16 units, Reshape to [B, S, 16], Relu, Reshape to [-1, 16], Gemm back
    /// to 8, Reshape to [1, 5, 8], residual Add. Both blocks read their [B, S, 16] target from
    /// one Concat (dynamo); the second block's [-1, 16] target takes the 16 from the Shape of
    /// its input (TorchScript's `x.view(-1, x.size(-1))`).
    private func conv1dBlocks() -> Model {
        let b = GraphBuilder(seed: 23)
        let wide = b.node("Concat", [b.dim(of: "x", 0), b.dim(of: "x", 1), b.int64("ffn", [16])], name: "wide_shape", ["axis": .int(0)])
        var h = "x"
        for layer in 1...2 {
            let rows = b.node("Reshape", [h, b.int64("rows\(layer)", [-1, 8])])
            let up = b.node("Relu", [b.node("Reshape", [b.gemm(rows, 8, 16, name: "up\(layer)"), wide])])
            var target = b.int64("narrow\(layer)", [-1, 16])
            if layer == 2 {
                let last = b.node("Slice", [b.node("Shape", [up]), b.int64("start", [-1]), b.int64("end", [Int64.max])])
                let width = b.node("Unsqueeze", [b.node("Squeeze", [last, b.int64("squeeze_axes", [0])]), b.int64("unsqueeze_axes", [0])])
                target = b.node("Concat", [b.int64("minus_one", [-1]), width], ["axis": .int(0)])
            }
            let down = b.gemm(b.node("Reshape", [up, target]), 16, 8, name: "down\(layer)")
            h = b.node("Add", [b.node("Reshape", [down, b.int64("back\(layer)", [1, 5, 8])]), h])
        }
        return b.model(shape: [1, 5, 8], output: h)
    }

    func testFeedForwardBetweenReshapesAroundGemmIsPruned() throws {
        let m = conv1dBlocks()
        for layer in 1...2 {
            m.fill("up\(layer).weight", axis: 1, channels: Array(0..<8))
            m.fill("up\(layer).bias", axis: 0, channels: Array(0..<8))
        }
        let report = try pruneKeepingOutputs(m, input([1, 5, 8]), options())
        XCTAssertEqual(shapes(m, ["up1.weight", "up1.bias", "down1.weight", "up2.weight", "up2.bias", "down2.weight"]),
                       [[8, 8], [8], [8, 8], [8, 8], [8], [8, 8]])
        XCTAssertEqual(m.initializer("narrow1").array(of: Int64.self), [-1, 8])
        XCTAssertFalse(report.skipped.contains { $0.name.hasPrefix("up") }, "\(report.skipped)")
        // Each block now reads a [B, S, 8] target of its own.
        let targets = m.graph.nodes.filter { $0.opType == "Concat" && $0.inputs.count == 3 }
        XCTAssertEqual(targets.count, 2)
        for t in targets { XCTAssertEqual(m.initializer(t.inputs[2]).array(of: Int64.self), [8]) }
    }

    // MARK: - Left alone, with a reason

    func testConcatenatedChannelsAreSkippedWithAReason() throws {
        let b = GraphBuilder()
        let l = b.node("Relu", [b.conv("x", 3, 4, name: "left")])
        let r = b.node("Relu", [b.conv("x", 3, 4, name: "right")])
        let cat = b.node("Concat", [l, r], ["axis": .int(1)])
        let h = b.node("Relu", [b.conv(cat, 8, 6, name: "after")])
        let m = b.model(shape: [1, 3, 5, 5], output: b.conv(h, 6, 2, name: "head", kernel: 1))
        let report = try prune(m, options: options())
        let skipped = Dictionary(report.skipped.map { ($0.name, $0.reason) }, uniquingKeysWith: { a, _ in a })
        XCTAssertTrue(skipped["left.weight"]?.contains("Concat") == true, "\(report.skipped)")
        XCTAssertTrue(skipped["right.weight"]?.contains("Concat") == true, "\(report.skipped)")
        XCTAssertEqual(shapes(m, ["left.weight", "right.weight", "after.weight", "head.weight"]),
                       [[4, 3, 3, 3], [4, 3, 3, 3], [3, 8, 3, 3], [2, 3, 1, 1]])
    }

    func testUnknownReshapeIsSkippedWithAReason() throws {
        let b = GraphBuilder()
        let c = b.conv("x", 3, 4, name: "conv")
        let r = b.node("Reshape", [c, b.int64("shape", [1, 2, -1])], name: "split")
        let m = b.model(shape: [1, 3, 4, 4], output: b.node("Relu", [r]))
        let report = try prune(m, options: options())
        XCTAssertTrue(report.tensors.isEmpty)
        XCTAssertEqual(report.skipped.map(\.name), ["conv.weight"])
        XCTAssertTrue(report.skipped[0].reason.contains("'split' (Reshape)"), report.skipped[0].reason)
    }

    func testExcludedProducersAndReadersAreHonoured() throws {
        // Excluding conv1 by node name keeps its filters; excluding the classifier's weight
        // keeps conv2's channels, whose removal would change it.
        let m = cnn()
        let report = try prune(m, options: options(exclude: ["conv1", "fc.weight"]))
        XCTAssertEqual(shapes(m, ["conv1.weight", "conv2.weight", "fc.weight"]), [[8, 3, 3, 3], [16, 8, 3, 3], [16, 10]])
        XCTAssertTrue(report.skipped.contains { $0.name == "conv1.weight" && $0.reason.contains("excluded") })
        XCTAssertTrue(report.skipped.contains { $0.name == "conv2.weight" && $0.reason.contains("'fc.weight'") })

        let byType = cnn()
        _ = try prune(byType, options: options(exclude: ["Gemm"]))
        XCTAssertEqual(shapes(byType, ["conv1.weight", "conv2.weight"]), [[4, 3, 3, 3], [16, 4, 3, 3]])
    }

    func testMinElementsLeavesSmallLayersAlone() throws {
        let m = cnn()
        var o = options()
        o.minElements = 500  // conv1 has 8*3*3*3 = 216 weights, conv2 1152
        let report = try prune(m, options: o)
        XCTAssertEqual(shapes(m, ["conv1.weight", "conv2.weight"]), [[8, 3, 3, 3], [8, 8, 3, 3]])
        XCTAssertTrue(report.skipped.contains { $0.name == "conv1.weight" && $0.reason.contains("fewer than the minimum") })
    }

    func testFailureLeavesTheModelUnchanged() throws {
        let m = cnn()
        m.fill("conv2.weight", axis: 0, channels: [3], with: .nan)
        let before = try m.serialized()
        XCTAssertThrowsError(try prune(m, options: options()))
        XCTAssertEqual(try m.serialized(), before)
    }

    func testSparsityRoundsAndKeepsOneChannel() {
        XCTAssertEqual(channelsToRemove(8, sparsity: 0.5), 4)
        XCTAssertEqual(channelsToRemove(10, sparsity: 0.25), 3)  // 2.5 rounds away from zero
        XCTAssertEqual(channelsToRemove(2, sparsity: 0.9), 1)
        XCTAssertEqual(channelsToKeep(scores: [3, 1, 2, 1], remove: 2), [0, 2])
    }

    func testChannelMultipleKeepsTheNearestMultiple() throws {
        XCTAssertEqual(channelsToRemove(72, sparsity: 0.3, multiple: 16), 24)  // 50.4 kept -> 48
        XCTAssertEqual(channelsToRemove(88, sparsity: 0.3, multiple: 16), 24)  // 61.6 -> 64
        XCTAssertEqual(channelsToRemove(24, sparsity: 0.9, multiple: 16), 8)   // at least one multiple
        XCTAssertEqual(channelsToRemove(16, sparsity: 0.5, multiple: 16), 8)   // not more than the multiple: as without
        XCTAssertEqual(channelsToRemove(70, sparsity: 0, multiple: 16), 0)     // nothing to remove stays nothing
        XCTAssertEqual(channelsToRemove(40, sparsity: 0.05, multiple: 16), 8)  // 38 -> 32

        // A 40-filter Conv at 30% keeps 32 (not 28) filters, and the next Conv follows.
        let b = GraphBuilder()
        let h = b.node("Relu", [b.conv("x", 3, 40, name: "conv1")])
        let m = b.model(shape: [1, 3, 6, 6], output: b.conv(h, 40, 4, name: "conv2", kernel: 1))
        var o = options()
        o.sparsity = 0.3
        o.channelMultiple = 16
        try prune(m, options: o)
        XCTAssertEqual(shapes(m, ["conv1.weight", "conv1.bias", "conv2.weight"]), [[32, 3, 3, 3], [32], [4, 32, 1, 1]])
        o.channelMultiple = -1
        XCTAssertThrowsError(try prune(b.model(shape: [1, 3, 6, 6], output: h), options: o))
    }
}
