import Synchronization
import XCTest
@testable import KerfCore
@testable import KerfKernels
@testable import KerfRuntime
import KerfTestSupport

/// What a session keeps of its model's weights.
final class SessionMemoryTests: XCTestCase {
    private let opsets = [OpsetImport(domain: "", version: 17)]

    private func values(_ n: Int, _ seed: Int) -> [Float] { (0..<n).map { Float(($0 * 7 + seed * 13) % 11) / 11 - 0.4 } }

    /// y = x · W (+ b): a MatMul [k, n] with a fused bias Add, or a Gemm with transB.
    private func product(gemm: Bool, k: Int, n: Int, weightIsInput: Bool = false) -> Graph {
        let w = Tensor(shape: gemm ? [n, k] : [k, n], values: values(k * n, 1))
        let inits = [Initializer(name: "W", tensor: w), Initializer(name: "b", tensor: Tensor(shape: [n], values: values(n, 2)))]
        var nodes: [Node]
        if gemm {
            var node = Node(name: "gemm", opType: "Gemm", inputs: ["x", "W", "b"], outputs: ["y"])
            node.attributes = [Attribute(name: "transB", value: .int(1))]
            nodes = [node]
        } else {
            nodes = [Node(name: "mm", opType: "MatMul", inputs: ["x", "W"], outputs: ["m"]),
                     Node(name: "add", opType: "Add", inputs: ["m", "b"], outputs: ["y"])]
        }
        var inputs = [ValueInfo(name: "x", type: .tensor(dtype: .float, shape: [.symbol("N"), .symbol("K")]))]
        if weightIsInput { inputs.append(ValueInfo(name: "W", type: .tensor(dtype: .float, shape: w.shape.map { .value($0) }))) }
        return Graph(nodes: nodes, inputs: inputs, outputs: [ValueInfo(name: "y", type: nil)], initializers: inits)
    }

    private func reference(_ g: Graph, _ x: Tensor) throws -> [Float] {
        try Session(graph: g, opsets: opsets, options: SessionOptions(threads: 1, optimizationLevel: 0, sparseKernels: false))
            .run(["x": x])[0].array(of: Float.self)
    }

    /// Packed weights are the session's only copy: once the graph is gone, its weight tensor is
    /// freed at the first run, and runs keep giving the graph's results.
    func testSessionLetsGoOfPackedWeights() throws {
        for gemm in [false, true] {
            for threads in [1, 2] {
                let (k, n) = (40, 200)
                var g: Graph? = product(gemm: gemm, k: k, n: n)
                let x = Tensor(shape: [3, k], values: values(3 * k, 3))
                let expected = try reference(g!, x)
                weak var weights = g!.initializer(named: "W")!.tensor.storage
                let session = try Session(graph: g!, opsets: opsets, options: SessionOptions(threads: threads, sparseKernels: false))
                g = nil
                XCTAssertNotNil(weights, "held until packed")
                for _ in 0..<2 {
                    let y = try session.run(["x": x])[0].array(of: Float.self)
                    assertClose(y, expected, absolute: 1e-5, "gemm \(gemm) threads \(threads)")
                }
                XCTAssertNil(weights, "gemm \(gemm) threads \(threads): the plain weights outlived packing")
                XCTAssertThrowsError(try session.run(["x": x], outputNames: ["W"])) { error in
                    guard case KerfError.invalidArgument = error else { return XCTFail("\(error)") }
                }
                XCTAssertEqual(try session.run(["x": x], outputNames: ["b"])[0].array(of: Float.self), values(n, 2), "kept")
                // A product the packed weights cannot run reads the weights rebuilt from them.
                XCTAssertThrowsError(try session.run(["x": Tensor(shape: [3, k + 1], values: values(3 * (k + 1), 3))])) { error in
                    guard case KerfError.shapeMismatch = error else { return XCTFail("\(error)") }
                }
            }
        }
    }

    /// A weight a feed may replace stays with the session, and a fed one is used instead.
    /// Once a session has run at each batch size, its runs take every tensor buffer, small or
    /// large, from the pool: none comes from the system.
    func testSteadyStateRunsTakeNoTensorMemoryFromTheSystem() throws {
        let g = product(gemm: false, k: 64, n: 3000)
        let session = try Session(graph: g, opsets: opsets, options: SessionOptions(threads: 1))
        let batches = [1, 40].map { Tensor(shape: [$0, 64], values: values($0 * 64, $0)) }
        for x in batches + batches { _ = try session.run(["x": x]) }
        let before = StoragePool.shared.systemAllocations.load(ordering: .relaxed)
        for _ in 0..<10 {
            for x in batches { XCTAssertEqual(try session.run(["x": x])[0].shape, [x.shape[0], 3000]) }
        }
        XCTAssertEqual(StoragePool.shared.systemAllocations.load(ordering: .relaxed), before)
    }

    func testOverridableWeightIsKept() throws {
        let (k, n) = (8, 16)
        var g: Graph? = product(gemm: false, k: k, n: n, weightIsInput: true)
        let x = Tensor(shape: [2, k], values: values(2 * k, 3))
        let expected = try reference(g!, x)
        weak var weights = g!.initializer(named: "W")!.tensor.storage
        let session = try Session(graph: g!, opsets: opsets, options: SessionOptions(threads: 1, sparseKernels: false))
        g = nil
        assertClose(try session.run(["x": x])[0].array(of: Float.self), expected, absolute: 1e-5)
        XCTAssertNotNil(weights)
        let zeros = try Tensor(zeros: .float, shape: [k, n])
        let y = try session.run(["x": x, "W": zeros])[0].array(of: Float.self)
        XCTAssertEqual(y, (0..<2 * n).map { values(n, 2)[$0 % n] })
    }

    /// The packed copy gives back the weights it was made from, in either layout and split.
    func testPackedGemmTilesUnpack() throws {
        let (k, n) = (37, 300)
        for transposed in [false, true] {
            let w = values(k * n, 5)
            for threads in [1, 2, 3] {
                let tiles = try XCTUnwrap(w.withUnsafeBufferPointer {
                    PackedGemmTiles(k: k, n: n, w: $0.baseAddress!, ldw: transposed ? k : n, transposed: transposed, bias: nil, threads: threads)
                })
                var back = [Float](repeating: .nan, count: k * n)
                XCTAssertTrue(back.withUnsafeMutableBufferPointer {
                    tiles.unpack(into: $0.baseAddress!, ldw: transposed ? k : n, transposed: transposed)
                })
                XCTAssertEqual(back, w, "transposed \(transposed) threads \(threads)")
            }
        }
    }

    /// Operators write over inputs handed to them only when nothing else sees those elements:
    /// not a value that is also a graph output, one that a Reshape view still shares, one
    /// read twice by the node, or a feed.
    func testResultsWrittenOverInputsChangeNothingElse() throws {
        let n = 6
        let x = (0..<n).map { Float($0) - 2.5 }
        func node(_ op: String, _ inputs: [String], _ output: String) -> Node { Node(name: output, opType: op, inputs: inputs, outputs: [output]) }
        let nodes = [
            node("Relu", ["x"], "r"),
            node("Reshape", ["r", "shape"], "v"),        // shares r's storage
            node("Add", ["r", "one"], "s"),              // r's last reader, but v is alive
            node("Mul", ["v", "two"], "m"),
            node("Neg", ["x"], "o"),                     // a graph output, read once more
            node("Add", ["o", "one"], "p"),
            node("Sigmoid", ["x"], "q"),
            node("Add", ["q", "q"], "d"),                // the same value twice
            node("Softmax", ["d"], "e"),                 // d handed over: written in place
            node("Div", ["x", "two"], "f"),              // x is a feed
        ]
        let inits = [Initializer(name: "shape", tensor: Tensor(shape: [2], values: [Int64(2), Int64(3)])),
                     Initializer(name: "one", tensor: Tensor(scalar: Float(1))), Initializer(name: "two", tensor: Tensor(scalar: Float(2)))]
        let outputs = ["s", "m", "o", "p", "e", "f"].map { ValueInfo(name: $0, type: nil) }
        let g = Graph(nodes: nodes, inputs: [ValueInfo(name: "x", type: .tensor(dtype: .float, shape: [.value(n)]))], outputs: outputs,
                      initializers: inits)
        let feed = Tensor(shape: [n], values: x)
        let ys = try Session(graph: g, opsets: opsets, options: SessionOptions(threads: 1)).run(["x": feed]).map { $0.array(of: Float.self) }
        let relu = x.map { max(0, $0) }, q = x.map { 1 / (1 + exp(-$0)) }
        let d = q.map { $0 + $0 }, total = d.map { exp($0 - d.max()!) }.reduce(0, +)
        XCTAssertEqual(ys[0], relu.map { $0 + 1 })
        XCTAssertEqual(ys[1], relu.map { $0 * 2 })
        XCTAssertEqual(ys[2], x.map { -$0 })
        XCTAssertEqual(ys[3], x.map { -$0 + 1 })
        assertClose(ys[4], d.map { exp($0 - d.max()!) / total }, absolute: 1e-5)
        XCTAssertEqual(ys[5], x.map { $0 / 2 })
        XCTAssertEqual(feed.array(of: Float.self), x, "the feed is unchanged")
    }

    /// A Conv's constant weights live in oneDNN's copy only once the direct convolution is made;
    /// another input shape rebuilds them from that copy.
    func testConvLetsGoOfWeightsOneDnnHolds() throws {
        let (c, m) = (16, 32)
        let plain = Tensor(shape: [m, c, 3, 3], values: values(m * c * 9, 4))  // for the reference
        var w: Tensor? = Tensor(shape: [m, c, 3, 3], values: values(m * c * 9, 4))
        let b = Tensor(shape: [m], values: values(m, 5))
        weak var weights = w!.storage
        var conv = Node(name: "conv", opType: "Conv", inputs: ["x", "W", "b"], outputs: ["y"])
        conv.attributes = [Attribute(name: "pads", value: .ints([1, 1, 1, 1]))]
        var g: Graph? = Graph(nodes: [conv], inputs: [ValueInfo(name: "x", type: nil)], outputs: [ValueInfo(name: "y", type: nil)],
                              initializers: [Initializer(name: "W", tensor: w!), Initializer(name: "b", tensor: b)])
        w = nil
        let session = try Session(graph: g!, opsets: opsets, options: SessionOptions(threads: 1))
        g = nil
        let window = WindowAttributes(kernelShape: nil, strides: nil, dilations: nil, pads: [1, 1, 1, 1], autoPad: "NOTSET", ceilMode: false)
        for (run, batch) in [2, 2, 3, 1].enumerated() {
            let x = Tensor(shape: [batch, c, 7, 6], values: values(batch * c * 42, 6))
            let expected = try ConvOperator(window: window, group: 1).run([x, plain, b])[0].array(of: Float.self)
            let y = try session.run(["x": x])[0].array(of: Float.self)
            assertClose(y, expected, absolute: 1e-4, "batch \(batch)")
            if run == 0 { XCTAssertNil(weights, "oneDNN's copy is the only one") }
        }
    }
}
