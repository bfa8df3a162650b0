import XCTest
@testable import KerfCompress
@testable import KerfCore
import KerfRuntime
import KerfTestSupport

final class MagnitudePruningTests: XCTestCase {
    /// Deterministic pseudo-random weights in [-1, 1].
    private func weights(_ n: Int, seed: UInt64) -> [Float] { SeededGenerator(seed: seed).floats(n) }

    /// x[2,3,6,6] -> Conv(W1[8,3,3,3]) -> Relu -> MatMul-free Flatten -> Gemm(W2[8*16, 10], transB 0) -> MatMul(W3[10, 4]) -> y
    private func model() -> Model {
        let inits = [
            Initializer(name: "W1", tensor: Tensor(shape: [8, 3, 3, 3], values: weights(216, seed: 1))),
            Initializer(name: "W2", tensor: Tensor(shape: [128, 10], values: weights(1280, seed: 2))),
            Initializer(name: "b2", tensor: Tensor(shape: [10], values: weights(10, seed: 3))),
            Initializer(name: "W3", tensor: Tensor(shape: [10, 4], values: weights(40, seed: 4))),
        ]
        let nodes = [
            Node(name: "conv", opType: "Conv", inputs: ["x", "W1"], outputs: ["c"]),
            Node(name: "relu", opType: "Relu", inputs: ["c"], outputs: ["r"]),
            Node(name: "flat", opType: "Flatten", inputs: ["r"], outputs: ["f"]),
            Node(name: "fc", opType: "Gemm", inputs: ["f", "W2", "b2"], outputs: ["g"]),
            Node(name: "head", opType: "MatMul", inputs: ["g", "W3"], outputs: ["y"]),
        ]
        let graph = Graph(nodes: nodes, inputs: [ValueInfo(name: "x", type: .tensor(dtype: .float, shape: [.value(2), .value(3), .value(6), .value(6)]))],
                          outputs: [ValueInfo(name: "y", type: nil)], initializers: inits)
        return Model(graph: graph)
    }

    private func zeros(_ m: Model, _ name: String) -> Int { zeroCount(m.graph.initializer(named: name)!.tensor) }

    func testLayerScopeHitsTargetPerTensorAndKeepsLargest() throws {
        let m = model()
        let original = m.graph.initializer(named: "W2")!.tensor.array(of: Float.self)
        var o = PruneOptions()
        o.sparsity = 0.7
        let report = try prune(m, options: o)
        XCTAssertEqual(report.tensors.map(\.name), ["W1", "W2", "W3"], "bias b2 is not a weight operand")
        for (name, n) in [("W1", 216), ("W2", 1280), ("W3", 40)] {
            XCTAssertEqual(zeros(m, name), Int((0.7 * Double(n)).rounded()), name)
        }
        // Every kept weight is at least as large as every removed one.
        let pruned = m.graph.initializer(named: "W2")!.tensor.array(of: Float.self)
        let kept = zip(original, pruned).filter { $1 != 0 }.map { abs($0.0) }
        let removed = zip(original, pruned).filter { $1 == 0 }.map { abs($0.0) }
        XCTAssertGreaterThanOrEqual(kept.min()!, removed.max()!)
        XCTAssertEqual(kept.count, zip(original, pruned).filter { $0 == $1 && $1 != 0 }.count, "kept weights are unchanged")
        XCTAssertEqual(report.tensors[1].zeros, zeros(m, "W2"))
        XCTAssertLessThan(report.nonzeroParametersAfter, report.nonzeroParametersBefore)
        XCTAssertEqual(report.parametersAfter, report.parametersBefore)
    }

    func testGlobalScopeSharesOneThresholdWithCap() throws {
        let m = model()
        var o = PruneOptions()
        o.sparsity = 0.5
        o.scope = .global
        o.maxTensorSparsity = 0.6
        // Make W3 tiny so a plain global threshold would remove all of it.
        m.graph.initializers[3].tensor.withMutableElements(as: Float.self) { w in for i in w.indices { w[i] *= 1e-3 } }
        let report = try prune(m, options: o)
        let total = 216 + 1280 + 40
        XCTAssertEqual(report.tensors.reduce(0) { $0 + $1.zeros }, Int((0.5 * Double(total)).rounded()))
        XCTAssertEqual(zeros(m, "W3"), 24, "capped at 60% of 40")
        // Outside the capped tensor one threshold holds: every kept weight >= every removed one.
        var kept: Float = .infinity, removed: Float = 0
        for name in ["W1", "W2"] {
            for x in m.graph.initializer(named: name)!.tensor.array(of: Float.self) { if x != 0 { kept = min(kept, abs(x)) } }
        }
        let before = model()
        for name in ["W1", "W2"] {
            let a = before.graph.initializer(named: name)!.tensor.array(of: Float.self)
            let b = m.graph.initializer(named: name)!.tensor.array(of: Float.self)
            XCTAssertEqual(a.count, b.count, name)
            for (x, y) in zip(a, b) where y == 0 { removed = max(removed, abs(x)) }
        }
        XCTAssertGreaterThanOrEqual(kept, removed)
    }

    func testPerTensorMapExcludeAndMinimumSize() throws {
        let m = model()
        var o = PruneOptions()
        o.sparsity = 0.5
        o.perTensor = ["W2": 0.9]
        o.exclude = NameFilter(["conv"])
        o.minElements = 41
        let report = try prune(m, options: o)
        XCTAssertEqual(report.tensors.map(\.name), ["W2"])
        XCTAssertEqual(zeros(m, "W2"), 1152)
        XCTAssertEqual(zeros(m, "W1"), 0)
        XCTAssertEqual(zeros(m, "W3"), 0)
        XCTAssertEqual(Set(report.skipped.map(\.name)), ["W1", "W3"])
        XCTAssertTrue(report.skipped.first { $0.name == "W1" }!.reason.contains("excluded"))
        XCTAssertTrue(report.skipped.first { $0.name == "W3" }!.reason.contains("minimum"))
    }

    func testNOfMHoldsInEveryGroupAlongTheReductionDimension() throws {
        for (n, mm) in [(2, 4), (1, 4), (4, 8)] {
            let m = model()
            var o = PruneOptions()
            o.method = .nOfM(n: n, m: mm)
            let report = try prune(m, options: o)
            XCTAssertEqual(report.targetSparsity, 1 - Double(n) / Double(mm), accuracy: 1e-12)
            // Conv W1[8,3,3,3]: groups along input channels (length 3 < m: at most n kept).
            let w1 = m.graph.initializer(named: "W1")!.tensor.array(of: Float.self)
            for o in 0..<8 { for k in 0..<9 {
                let group = (0..<3).map { w1[o * 27 + $0 * 9 + k] }
                XCTAssertLessThanOrEqual(group.filter { $0 != 0 }.count, n)
            } }
            // Gemm W2[K=128, N=10]: groups run down each column.
            let w2 = m.graph.initializer(named: "W2")!.tensor.array(of: Float.self)
            let original = model().graph.initializer(named: "W2")!.tensor.array(of: Float.self)
            for col in 0..<10 {
                for start in stride(from: 0, to: 128, by: mm) {
                    let idx = (start..<min(start + mm, 128)).map { $0 * 10 + col }
                    XCTAssertEqual(idx.filter { w2[$0] != 0 }.count, n, "column \(col) group \(start)")
                    let keptMin = idx.filter { w2[$0] != 0 }.map { abs(original[$0]) }.min()!
                    let removedMax = idx.filter { w2[$0] == 0 }.map { abs(original[$0]) }.max()!
                    XCTAssertGreaterThanOrEqual(keptMin, removedMax)
                }
            }
        }
    }

    func testPrunedModelStillRunsAndInvalidOptionsLeaveModelUnchanged() throws {
        let m = model()
        var o = PruneOptions()
        o.sparsity = 1.5
        XCTAssertThrowsError(try prune(m, options: o)) { XCTAssertEqual(($0 as? KerfError)?.status, 1) }
        o.sparsity = 0.3
        o.method = .nOfM(n: 4, m: 4)
        XCTAssertThrowsError(try prune(m, options: o))
        m.graph.initializers[1].tensor.withMutableElements(as: Float.self) { $0[5] = .nan }
        o.method = .magnitude
        XCTAssertThrowsError(try prune(m, options: o)) { XCTAssertTrue("\($0)".contains("NaN")) }
        XCTAssertEqual(zeros(m, "W1"), 0, "a failed call changes nothing")

        let fresh = model()
        _ = try prune(fresh, options: PruneOptions())
        let session = try Session(model: fresh)
        let x = Tensor(shape: [2, 3, 6, 6], values: weights(216, seed: 9))
        let y = try session.run(["x": x])[0]
        XCTAssertEqual(y.shape, [2, 4])
    }

    func testSparseStorageRoundTrips() throws {
        let m = model()
        var o = PruneOptions()
        o.sparsity = 0.9
        o.storeSparse = true
        let report = try prune(m, options: o)
        XCTAssertTrue(report.tensors.allSatisfy(\.storedSparse), "90% zeros: COO is smaller")
        XCTAssertLessThan(report.bytesAfter, report.bytesBefore)
        let reloaded = try Model.load(bytes: try m.serialized())
        for name in ["W1", "W2", "W3"] {
            XCTAssertTrue(reloaded.graph.initializer(named: name)!.storedSparse)
            XCTAssertEqual(reloaded.graph.initializer(named: name)!.tensor.array(of: Float.self),
                           m.graph.initializer(named: name)!.tensor.array(of: Float.self))
        }
        let json = try report.json()
        XCTAssertTrue(json.contains("\"stored_sparse\":true"))
        XCTAssertTrue(json.contains("\"overall_sparsity\""))
    }

    func testKthSmallestAgreesWithSorting() {
        for n in [1, 2, 7, 100, 1001] {
            let values = weights(n, seed: UInt64(n)).map { ($0 * 10).rounded() }   // many ties
            for k in Set([0, n / 3, n / 2, n - 1]) {
                var v = values
                XCTAssertEqual(kthSmallest(&v, k), values.sorted()[k], "n \(n) k \(k)")
            }
        }
    }
}
