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
