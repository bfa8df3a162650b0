import XCTest
@testable import KerfCore
@testable import KerfRuntime

/// Steps that compute only from shapes and constants reuse the previous run's outputs while the
/// shapes stay the same, and compute again when they change.
final class ShapeMemoTests: XCTestCase {
    /// y = Reshape(x, [x.shape[0], -1]), the target built by Shape -> Gather -> Unsqueeze -> Concat.
    private func flattenGraph() -> Graph {
        let ints = { (name: String, shape: [Int], values: [Int64]) in Initializer(name: name, tensor: Tensor(shape: shape, values: values)) }
        return Graph(nodes: [
            Node(name: "shape", opType: "Shape", inputs: ["x"], outputs: ["s"]),
            Node(name: "first", opType: "Gather", inputs: ["s", "zero"], outputs: ["d0"]),
            Node(name: "lift", opType: "Unsqueeze", inputs: ["d0", "axes"], outputs: ["d0u"]),
            Node(name: "target", opType: "Concat", inputs: ["d0u", "rest"], outputs: ["target"], attributes: [Attribute(name: "axis", value: .int(0))]),
            Node(name: "flatten", opType: "Reshape", inputs: ["x", "target"], outputs: ["y"]),
        ], inputs: [ValueInfo(name: "x", type: nil)], outputs: [ValueInfo(name: "y", type: nil)],
           initializers: [ints("zero", [], [0]), ints("axes", [1], [0]), ints("rest", [1], [-1])])
    }

    private func input(_ shape: [Int]) -> Tensor {
        Tensor(shape: shape, values: (0..<shape.reduce(1, *)).map { Float($0) })
    }

    func testShapeStepsAreReusedWhileShapesStayTheSame() throws {
        let session = try Session(graph: flattenGraph(), opsets: [OpsetImport(domain: "", version: 17)])
        let derived = session.plan.filter { ["Gather", "Unsqueeze", "Concat"].contains($0) }.count
        XCTAssertGreaterThan(derived, 0, "plan \(session.plan)")
        for (shape, expected) in [([2, 3, 4], [2, 12]), ([2, 3, 4], [2, 12]), ([5, 2, 2], [5, 4]), ([5, 2, 2], [5, 4]), ([2, 3, 4], [2, 12])] {
            session.startProfiling()
            let y = try session.run(["x": input(shape)])[0]
            XCTAssertEqual(y.shape, expected)
            XCTAssertEqual(y.array(of: Float.self), input(shape).array(of: Float.self))
        }
        // One more run of each kind, profiled alone.
        session.startProfiling()
        _ = try session.run(["x": input([2, 3, 4])])
        XCTAssertEqual(session.reusedStepsPerRun(), Double(derived), "same shapes as the run before")
        session.startProfiling()
        let y = try session.run(["x": input([3, 8])])[0]
        XCTAssertEqual(y.shape, [3, 8])
        XCTAssertEqual(session.reusedStepsPerRun(), 0, "new shapes")
    }

    /// A value a run asks for is computed by that run, never handed out from the cache.
    func testRequestedShapeValuesAreComputedEachRun() throws {
        let session = try Session(graph: flattenGraph(), opsets: [OpsetImport(domain: "", version: 17)])
        let derived = session.plan.filter { ["Gather", "Unsqueeze", "Concat"].contains($0) }.count
        var reused: [Double] = []
        for shape in [[2, 3, 4], [2, 3, 4], [7, 1, 2]] {
            session.startProfiling()
            let out = try session.run(["x": input(shape)], outputNames: ["target", "y"])
            XCTAssertEqual(out[0].array(of: Int64.self), [Int64(shape[0]), -1])
            XCTAssertEqual(out[1].shape, [shape[0], shape.dropFirst().reduce(1, *)])
            reused.append(session.reusedStepsPerRun())
        }
        XCTAssertEqual(reused, [0, Double(derived - 1), 0], "all but Concat, whose output was asked for, reused in the second run")
    }
}
