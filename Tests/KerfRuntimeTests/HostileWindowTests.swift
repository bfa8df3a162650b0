import FoundationEssentials
import XCTest
@testable import KerfCore
@testable import KerfRuntime

/// Conv and pooling attributes whose output size overflows (issue 16): pads near 2^31 give an
/// output whose element count overflows Int (the shape product trapped in `Tensor`), pads near
/// 2^62 overflow the padded extent itself, huge strides or dilations the window span. Each run
/// must throw a KerfError, never trap.
final class HostileWindowTests: XCTestCase {
    private let opsets = [OpsetImport(domain: "", version: 17)]

    /// Runs one `op` node over a [1, 1, 3, 3] input (with a [1, 1, 1, 1] W for Conv) and returns
    /// the KerfError it throws (session creation or run), failing when it throws none.
    /// `level` 0 runs the plain operators, 1 the optimized plan (channels-last and fused forms).
    private func error(_ op: String, _ attributes: [String: AttributeValue], level: Int,
                       file: StaticString = #filePath, line: UInt = #line) -> KerfError? {
        let inputs = op == "Conv" ? ["x", "W"] : ["x"]
        let node = Node(name: "n", opType: op, inputs: inputs, outputs: ["y"],
                        attributes: attributes.map { Attribute(name: $0.key, value: $0.value) })
        let w = Initializer(name: "W", tensor: Tensor(shape: [1, 1, 1, 1], values: [Float(2)]))
        let graph = Graph(nodes: [node], inputs: [ValueInfo(name: "x", type: nil)], outputs: [ValueInfo(name: "y", type: nil)],
                          initializers: op == "Conv" ? [w] : [])
        let x = Tensor(shape: [1, 1, 3, 3], values: (0..<9).map(Float.init))
        return refusal(of: graph, feeds: ["x": x], options: SessionOptions(threads: 1, optimizationLevel: level), opsets: opsets,
                       file: file, line: line)
    }

    func testPadsWhoseOutputCountOverflowsAreRefused() {
        for op in ["Conv", "MaxPool", "AveragePool"] {
            let kernel: [String: AttributeValue] = op == "Conv" ? [:] : ["kernel_shape": .ints([1, 1])]
            let near31 = kernel.merging(["pads": .ints([1 << 31, 1 << 31, 1 << 31, 1 << 31])]) { a, _ in a }
            let near62 = kernel.merging(["pads": .ints([1 << 62, 1 << 62, 0, 1 << 62])]) { a, _ in a }
            for level in [0, 1] {
                let tooMany = error(op, near31, level: level)
                XCTAssertEqual(tooMany?.status, 6, "\(op), level \(level): \(String(describing: tooMany))")
                let overflow = error(op, near62, level: level)
                XCTAssertEqual(overflow?.status, 3, "\(op), level \(level): \(String(describing: overflow))")
                XCTAssertTrue(overflow?.message.contains("overflow") ?? false, "\(String(describing: overflow))")
            }
        }
    }

    func testDilationsAndStridesThatOverflowAreRefused() {
        let dilated: [String: AttributeValue] = ["kernel_shape": .ints([3, 3]), "dilations": .ints([1 << 62, 1 << 62])]
        let strided: [String: AttributeValue] = ["kernel_shape": .ints([2, 2]), "strides": .ints([.max, .max]),
                                                 "auto_pad": .string(Data("SAME_UPPER".utf8))]
        for level in [0, 1] {
            for attributes in [dilated, strided] {
                let e = error("MaxPool", attributes, level: level)
                XCTAssertEqual(e?.status, 3, "level \(level): \(String(describing: e))")
            }
        }
    }
}
