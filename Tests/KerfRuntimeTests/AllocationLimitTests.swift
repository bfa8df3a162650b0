import XCTest
@testable import KerfCore
@testable import KerfRuntime

/// The allocation limit (issue 16, class 3): outputs of tens of GB that a few bytes of input ask
/// for fail with `.outOfMemory` naming the node, never abort; a session's `memoryLimit` bounds
/// what that session holds; tensors made from shapes check their size before allocating.
/// Sizes stay either far above this machine's memory (the system would refuse them: before the
/// limit, a trap) or tiny, so a regression cannot eat the machine.
final class AllocationLimitTests: XCTestCase {
    private let opsets = [OpsetImport(domain: "", version: 17)]

    private func graph(_ nodes: [Node], inputs: [String], initializers: [Initializer] = []) -> Graph {
        Graph(nodes: nodes, inputs: inputs.map { ValueInfo(name: $0, type: nil) },
              outputs: [ValueInfo(name: "y", type: nil)], initializers: initializers)
    }

    private func int64s(_ name: String, _ values: [Int64]) -> Initializer {
        Initializer(name: name, tensor: Tensor(shape: [values.count], values: values))
    }

    /// The KerfError a run of `graph` throws (at creation or run), failing when there is none.
    private func failure(_ graph: Graph, _ feeds: [String: Tensor], options: SessionOptions = SessionOptions(threads: 1),
                         file: StaticString = #filePath, line: UInt = #line) -> KerfError? {
        refusal(of: graph, feeds: feeds, options: options, opsets: opsets, file: file, line: line)
    }

    /// [100000, 1] x [1, 100000] floats: 37 GB of output from 800 KB of input.
    func testHugeMatMulOutputIsOutOfMemory() {
        let g = graph([Node(name: "fc1", opType: "MatMul", inputs: ["a", "b"], outputs: ["y"])], inputs: ["a", "b"])
        let n = 100_000
        let a = Tensor(shape: [n, 1], values: [Float](repeating: 1, count: n))
        let b = Tensor(shape: [1, n], values: [Float](repeating: 1, count: n))
        for level in [0, 1] {
            let e = failure(g, ["a": a, "b": b], options: SessionOptions(threads: 1, optimizationLevel: level))
            XCTAssertEqual(e?.status, KerfError.outOfMemory("").status, "\(String(describing: e))")
            XCTAssertTrue(e?.message.contains("fc1") ?? false, "\(String(describing: e))")
            XCTAssertTrue(e?.message.contains("[100000, 100000]") ?? false, "\(String(describing: e))")
            XCTAssertTrue(e?.message.contains("allocation limit") ?? false, "\(String(describing: e))")
        }
    }

    /// ConstantOfShape and Expand asked for 40 GB by a shape tensor (data, not attributes).
    func testHugeDataDrivenShapesAreOutOfMemory() {
        let shape: [Int64] = [10_000, 1_000_000]  // 10^10 floats
        let cos = graph([Node(name: "fill", opType: "ConstantOfShape", inputs: ["s"], outputs: ["y"])], inputs: ["s"])
        let expand = graph([Node(name: "grow", opType: "Expand", inputs: ["x", "s"], outputs: ["y"])], inputs: ["x", "s"])
        let tile = graph([Node(name: "tile", opType: "Tile", inputs: ["x", "r"], outputs: ["y"])], inputs: ["x", "r"])
        let s = Tensor(shape: [2], values: shape)
        let x = Tensor(shape: [1, 1], values: [Float(1)])
        let cases: [(Graph, [String: Tensor])] = [(cos, ["s": s]), (expand, ["x": x, "s": s]), (tile, ["x": x, "r": s])]
        for (g, feeds) in cases {
            for level in [0, 1] {
                let e = failure(g, feeds, options: SessionOptions(threads: 1, optimizationLevel: level))
                XCTAssertEqual(e?.status, 6, "\(g.nodes[0].opType), level \(level): \(String(describing: e))")
            }
        }
    }

    /// A session's limit bounds what it allocates, whatever the process holds: 1 MB refuses a
    /// 4 MB output, and the session runs again once given a smaller request.
    func testSessionMemoryLimitRefusesLargerOutputs() throws {
        let g = graph([Node(name: "fill", opType: "ConstantOfShape", inputs: ["s"], outputs: ["y"])], inputs: ["s"])
        let session = try Session(graph: g, opsets: opsets, options: SessionOptions(threads: 1, memoryLimit: 1 << 20))
        XCTAssertThrowsError(try session.run(["s": Tensor(shape: [1], values: [Int64(1 << 20)])])) { error in
            let e = error as? KerfError
            XCTAssertEqual(e?.status, 6, "\(error)")
            XCTAssertTrue(e?.message.contains("4 MB") ?? false, "\(error)")
            XCTAssertTrue(e?.message.contains("1 MB") ?? false, "\(error)")
        }
        let small = try session.run(["s": Tensor(shape: [1], values: [Int64(1000)])])
        XCTAssertEqual(small[0].shape, [1000])
        // Outputs count while they live: two 400 KB outputs fit in 1 MB, a third does not.
        let s = Tensor(shape: [1], values: [Int64(100_000)])
        do {
            let first = try session.run(["s": s]), second = try session.run(["s": s])
            try withExtendedLifetime((first, second)) { XCTAssertThrowsError(try session.run(["s": s])) }
        }
        XCTAssertNoThrow(try session.run(["s": s]))  // both freed
    }

    /// Tensors made from a shape check size and limit before allocating.
    func testTensorInitializersRefuseWhatTheyCannotAllocate() {
        XCTAssertThrowsError(try Tensor(zeros: .float, shape: [1 << 40, 1 << 40])) { error in
            XCTAssertEqual((error as? KerfError)?.status, 6, "\(error)")
        }
        XCTAssertThrowsError(try Tensor(uninitialized: .float, shape: [1 << 40])) { error in
            XCTAssertEqual((error as? KerfError)?.status, 6, "\(error)")
            XCTAssertTrue("\(error)".contains("allocation limit"), "\(error)")
        }
    }

    /// The process-wide limit counts what the pool holds: lowered below what a tensor needs,
    /// the allocation fails; restored, it succeeds.
    func testProcessLimitIsCheckedBeforeAllocating() throws {
        let saved = MemoryLimit.processBytes
        defer { MemoryLimit.processBytes = saved }
        MemoryLimit.processBytes = 1 << 20
        XCTAssertThrowsError(try Tensor(uninitialized: .float, shape: [1 << 20])) { error in
            XCTAssertEqual((error as? KerfError)?.status, 6, "\(error)")
        }
        MemoryLimit.processBytes = 0
        XCTAssertEqual(MemoryLimit.processBytes, MemoryLimit.defaultBytes)
        XCTAssertEqual(try Tensor(uninitialized: .float, shape: [1 << 20]).byteCount, 4 << 20)
    }

    func testFormat() {
        XCTAssertEqual(MemoryLimit.format(512), "512 bytes")
        XCTAssertEqual(MemoryLimit.format(4 << 20), "4 MB")
        XCTAssertEqual(MemoryLimit.format(40_000_000_000), "37.3 GB")
    }
}
