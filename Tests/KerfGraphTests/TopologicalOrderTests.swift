import KerfCore
import KerfGraph
import XCTest

final class TopologicalOrderTests: XCTestCase {
    private func node(_ name: String, _ inputs: [String], _ outputs: [String]) -> Node {
        Node(name: name, opType: "Relu", inputs: inputs, outputs: outputs)
    }

    func testProducersComeFirstAndTiesKeepFileOrder() throws {
        let g = Graph(nodes: [node("c", ["b"], ["c"]), node("a", ["x"], ["a"]), node("b", ["a"], ["b"]), node("d", ["x"], ["d"])],
                      inputs: [ValueInfo(name: "x", type: nil)])
        XCTAssertEqual(try g.topologicalOrder().map(\.name), ["a", "d", "b", "c"])
    }

    func testCycleAndUndefinedInputAreErrors() {
        let cycle = Graph(nodes: [node("a", ["b"], ["a"]), node("b", ["a"], ["b"])])
        XCTAssertThrowsError(try cycle.topologicalOrder()) { XCTAssertTrue("\($0)".contains("cycle"), "\($0)") }
        let undefined = Graph(nodes: [node("a", ["nowhere"], ["a"])])
        XCTAssertThrowsError(try undefined.topologicalOrder()) { XCTAssertTrue("\($0)".contains("nowhere"), "\($0)") }
    }

    func testDependencyOrderSetsCyclicNodesApart() {
        let nodes = [node("a", ["b"], ["a"]), node("b", ["a"], ["b"]), node("c", ["x"], ["c"]), node("d", ["c"], ["d"])]
        let (order, cyclic) = Graph.dependencyOrder(nodes)
        XCTAssertEqual(order, [2, 3])
        XCTAssertEqual(cyclic, [0, 1])
    }
}

final class GraphPatchTests: XCTestCase {
    func testEditsApplyAtOnceAgainstOriginalIndices() {
        let g = Graph(nodes: [Node(name: "a", opType: "Relu", inputs: ["x"], outputs: ["a"]),
                              Node(name: "b", opType: "Neg", inputs: ["a"], outputs: ["b"]),
                              Node(name: "c", opType: "Abs", inputs: ["b"], outputs: ["c"])],
                      inputs: [ValueInfo(name: "x", type: nil)], outputs: [ValueInfo(name: "c", type: nil)],
                      initializers: [Initializer(name: "old", tensor: Tensor(shape: [1], values: [Float(1)]))])
        var patch = GraphPatch()
        XCTAssertTrue(patch.isEmpty)
        patch.remove(1)
        patch.redirect("b", to: "a")
        patch.replace(0, with: Node(name: "a2", opType: "Sigmoid", inputs: ["x"], outputs: ["a"]))
        patch.insert([Node(name: "first", opType: "Identity", inputs: ["x"], outputs: ["x2"])], before: 0)
        patch.insert([Node(name: "last", opType: "Identity", inputs: ["c"], outputs: ["d"])], before: 3)
        patch.addInitializer("new", Tensor(shape: [1], values: [Float(2)]))
        patch.dropInitializer("old")
        XCTAssertTrue(patch.touches(0) && patch.touches(1) && !patch.touches(2))
        XCTAssertEqual(g.nodes.count, 3, "nothing changes before apply")
        patch.apply(to: g)
        XCTAssertEqual(g.nodes.map(\.name), ["first", "a2", "c", "last"])
        XCTAssertEqual(g.nodes[2].inputs, ["a"])
        XCTAssertEqual(g.initializers.map(\.name), ["new"])
        XCTAssertEqual(g.outputs.map(\.name), ["c"])
    }
}
