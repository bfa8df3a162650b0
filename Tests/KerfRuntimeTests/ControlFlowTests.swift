import XCTest
@testable import KerfCore
@testable import KerfGraph
@testable import KerfRuntime

/// If and Loop reading values of the enclosing graph by name: the sorting, dead-code removal
/// and graph optimizations of the enclosing graph must keep those values and their producers.
final class ControlFlowTests: XCTestCase {
    /// y = x * x, read only inside the Loop's body: v_final = v0 + M * y, scan = v after each step.
    private func loopGraph() -> Graph {
        let body = Graph(name: "body", nodes: [
            Node(name: "step", opType: "Add", inputs: ["v_in", "y"], outputs: ["v_out"]),
            Node(name: "keep", opType: "Identity", inputs: ["cond_in"], outputs: ["cond_out"]),
            Node(name: "copy", opType: "Identity", inputs: ["v_out"], outputs: ["v_scan"]),
        ], inputs: [ValueInfo(name: "i", type: .tensor(dtype: .int64, shape: [])), ValueInfo(name: "cond_in", type: .tensor(dtype: .bool, shape: [])),
                    ValueInfo(name: "v_in", type: .tensor(dtype: .float, shape: nil))],
        outputs: [ValueInfo(name: "cond_out", type: nil), ValueInfo(name: "v_out", type: nil), ValueInfo(name: "v_scan", type: .tensor(dtype: .float, shape: [.value(2)]))])
        let loop = Node(name: "loop", opType: "Loop", inputs: ["M", "", "v0"], outputs: ["v_final", "scanned"],
                        attributes: [Attribute(name: "body", value: .graph(body))])
        // The Loop comes first in file order: sorting must place it after the Mul it reads through its body.
        return Graph(name: "main", nodes: [loop, Node(name: "square", opType: "Mul", inputs: ["x", "x"], outputs: ["y"])],
                     inputs: [ValueInfo(name: "x", type: .tensor(dtype: .float, shape: [.value(2)])), ValueInfo(name: "v0", type: .tensor(dtype: .float, shape: [.value(2)]))],
                     outputs: [ValueInfo(name: "v_final", type: nil), ValueInfo(name: "scanned", type: nil)],
                     initializers: [Initializer(name: "M", tensor: Tensor(scalar: Int64(3)))])
    }

    func testLoopReadsAValueOnlyItsBodyReads() throws {
        let feeds = ["x": Tensor(shape: [2], values: [Float(2), -1]), "v0": Tensor(shape: [2], values: [Float(1), 0.5])]
        for level in [0, 1] {
            let session = try Session(graph: loopGraph(), opsets: [OpsetImport(domain: "", version: 17)],
                                      options: SessionOptions(threads: 1, optimizationLevel: level))
            XCTAssertEqual(session.plan, ["Mul", "Loop"])
            let out = try session.run(feeds)
            XCTAssertEqual(out[0].array(of: Float.self), [13, 3.5])
            XCTAssertEqual(out[1].shape, [3, 2])
            XCTAssertEqual(out[1].array(of: Float.self), [5, 1.5, 9, 2.5, 13, 3.5])
        }
    }

    func testUsageAndDeadCodeCountSubgraphReads() {
        let g = loopGraph()
        XCTAssertEqual(g.nodes[0].implicitInputs, ["y"])
        XCTAssertEqual(Usage(g).readers["y"], 1)
        XCTAssertTrue(Usage(g).readBySubgraphs.contains("y"))
        g.removeDeadNodes()
        XCTAssertEqual(g.nodes.map(\.opType), ["Loop", "Mul"])
    }

    func testIfConditionMustBeOneBool() throws {
        let branch = { (name: String) in
            Graph(name: name, nodes: [Node(name: name, opType: "Identity", inputs: ["x"], outputs: [name + "_out"])],
                  outputs: [ValueInfo(name: name + "_out", type: nil)])
        }
        let g = Graph(name: "main", nodes: [Node(name: "if", opType: "If", inputs: ["c"], outputs: ["y"], attributes: [
            Attribute(name: "then_branch", value: .graph(branch("then"))), Attribute(name: "else_branch", value: .graph(branch("else"))),
        ])], inputs: [ValueInfo(name: "c", type: nil), ValueInfo(name: "x", type: nil)], outputs: [ValueInfo(name: "y", type: nil)])
        let x = Tensor(shape: [1], values: [Float(4)])
        let error = refusal(of: g, feeds: ["c": Tensor(shape: [2], values: [true, false]), "x": x], options: SessionOptions(threads: 1))
        XCTAssertEqual(error?.status, KerfError.invalidArgument("").status)
        XCTAssertTrue(error?.message.contains("one element") ?? false, error?.message ?? "")
    }
}
