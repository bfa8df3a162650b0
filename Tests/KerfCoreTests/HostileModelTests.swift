import FoundationEssentials
import OnnxProto
import SwiftProtobuf
import XCTest
@testable import KerfCore

/// Models built to break the loader (issue 16): malformed wire bytes, sizes that overflow or
/// promise far more data than the file holds, and graphs whose meaning is ambiguous. Each must
/// be refused with a `KerfError` (never a trap, never a huge allocation) or, where valid, load.
final class HostileModelTests: XCTestCase {
    // MARK: Building models

    private func tensorProto(_ name: String, dims: [Int64], floats: [Float] = []) -> Onnx_TensorProto {
        var t = Onnx_TensorProto()
        t.name = name
        t.dataType = DType.float.rawValue
        t.dims = dims
        t.floatData = floats
        return t
    }

    private func int64Tensor(_ name: String, dims: [Int64], values: [Int64]) -> Onnx_TensorProto {
        var t = Onnx_TensorProto()
        t.name = name
        t.dataType = DType.int64.rawValue
        t.dims = dims
        t.int64Data = values
        return t
    }

    private func node(_ op: String, _ inputs: [String], _ outputs: [String], name: String? = nil) -> Onnx_NodeProto {
        var n = Onnx_NodeProto()
        n.opType = op
        n.name = name ?? outputs.first ?? op
        n.input = inputs
        n.output = outputs
        return n
    }

    private func valueInfo(_ name: String) -> Onnx_ValueInfoProto {
        var v = Onnx_ValueInfoProto()
        v.name = name
        return v
    }

    /// A model of `nodes` over inputs and outputs by name, opset 17 unless given.
    private func model(nodes: [Onnx_NodeProto], inputs: [String] = ["x"], outputs: [String] = ["y"],
                       initializers: [Onnx_TensorProto] = [], sparse: [Onnx_SparseTensorProto] = [],
                       opsets: [(String, Int64)] = [("", 17)]) -> Onnx_ModelProto {
        var g = Onnx_GraphProto()
        g.name = "g"
        g.node = nodes
        g.input = inputs.map(valueInfo)
        g.output = outputs.map(valueInfo)
        g.initializer = initializers
        g.sparseInitializer = sparse
        var m = Onnx_ModelProto()
        m.irVersion = 8
        m.graph = g
        m.opsetImport = opsets.map { domain, version in
            var o = Onnx_OperatorSetIdProto()
            o.domain = domain
            o.version = version
            return o
        }
        return m
    }

    private func load(_ proto: Onnx_ModelProto) throws -> Model {
        let bytes: Data = try proto.serializedBytes()
        return try Model.load(bytes: bytes)
    }

    /// Asserts that loading `proto` throws the KerfError of `status` whose message contains
    /// every string of `mentions`.
    private func assertRefused(_ proto: Onnx_ModelProto, status: Int32 = 3, mentions: [String] = [],
                               file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try load(proto), file: file, line: line) { error in
            guard let e = error as? KerfError else { return XCTFail("not a KerfError: \(error)", file: file, line: line) }
            XCTAssertEqual(e.status, status, "\(e)", file: file, line: line)
            for m in mentions { XCTAssertTrue(e.message.contains(m), "'\(m)' not in: \(e.message)", file: file, line: line) }
        }
    }

    // MARK: Class 1: pre-scan arithmetic

    /// A graph of 2 bytes whose initializer's length varint runs on past the graph's end: the
    /// reader is then beyond the message it reads (this trapped in `WireReader.message`).
    func testLengthVarintRunningPastItsMessageIsInvalid() throws {
        let bytes: [UInt8] = [0x3A, 0x02, 0x2A, 0x85, 0x20]  // graph { initializer: length 0x85 0x20... }
        XCTAssertNil(try bytes.withUnsafeBytes { try ModelBytes.read(MemoryByteSource(bytes: $0)) })
        XCTAssertThrowsError(try Model.load(bytes: Data(bytes))) { XCTAssertEqual(($0 as? KerfError)?.status, 3, "\($0)") }
        // The same inside an initializer (the field set apart): raw_data's length runs on.
        let nested: [UInt8] = [0x3A, 0x04, 0x2A, 0x02, 0x4A, 0x85, 0x20]
        XCTAssertNil(try nested.withUnsafeBytes { try ModelBytes.read(MemoryByteSource(bytes: $0)) })
        XCTAssertThrowsError(try Model.load(bytes: Data(nested))) { XCTAssertEqual(($0 as? KerfError)?.status, 3, "\($0)") }
    }

    /// Every single-bit flip in the bytes before a large initializer's payload (its length
    /// prefixes, names, dims) either loads or is a KerfError.
    func testBitFlipsBeforeAPayloadNeverTrap() throws {
        var weights = tensorProto("w", dims: [2048])
        weights.rawData = Data(repeating: 0x3F, count: 2048 * 4)
        let valid: Data = try model(nodes: [node("Add", ["x", "w"], ["y"])], initializers: [weights]).serializedBytes()
        let payloadStart = try XCTUnwrap(valid.firstRange(of: Data(repeating: 0x3F, count: 16))).lowerBound
        var refused = 0
        for i in 0..<payloadStart {
            for bit in 0..<8 {
                var bytes = valid
                bytes[i] ^= UInt8(1 << bit)
                do {
                    _ = try Model.load(bytes: bytes)
                } catch is KerfError {
                    refused += 1
                }
            }
        }
        XCTAssertGreaterThan(refused, 0)
    }

    // MARK: Class 2: allocation before validation

    /// dims [2^33] with no float_data: 32 GB were allocated (and zeroed) before the count check.
    func testTypedFieldsShorterThanTheirDimsAreRefusedBeforeAllocating() {
        let huge = tensorProto("w", dims: [1 << 33])
        assertRefused(model(nodes: [node("Add", ["x", "w"], ["y"])], initializers: [huge]), mentions: ["'w'", "0 values"])
        let ints = int64Tensor("shape", dims: [1 << 33], values: [1, 2])
        assertRefused(model(nodes: [node("Reshape", ["x", "shape"], ["y"])], initializers: [ints]), mentions: ["'shape'", "2 values"])
        // The same inside a node attribute.
        var constant = node("Constant", [], ["y"])
        var value = Onnx_AttributeProto()
        value.name = "value"
        value.type = .tensor
        value.t = tensorProto("", dims: [1 << 33])
        constant.attribute = [value]
        assertRefused(model(nodes: [constant], inputs: []), mentions: ["attribute 'value'"])
    }

    func testNegativeAndOverflowingDimsAreRefused() {
        assertRefused(model(nodes: [node("Add", ["x", "w"], ["y"])], initializers: [tensorProto("w", dims: [-1])]),
                      mentions: ["-1"])
        assertRefused(model(nodes: [node("Add", ["x", "w"], ["y"])],
                            initializers: [tensorProto("w", dims: [1 << 36, 1 << 36])]), mentions: ["too many elements"])
        // An empty tensor whose other dims multiply past Int: its strides would overflow.
        assertRefused(model(nodes: [node("Add", ["x", "w"], ["y"])],
                            initializers: [tensorProto("w", dims: [0, 1 << 36, 1 << 36, 1 << 36])]), mentions: ["too many elements"])
    }

    private func sparse(dims: [Int64], indices: Onnx_TensorProto, values: [Float]) -> Onnx_SparseTensorProto {
        var s = Onnx_SparseTensorProto()
        s.dims = dims
        s.values = tensorProto("w", dims: [Int64(values.count)], floats: values)
        s.indices = indices
        return s
    }

    private func modelWithSparse(_ s: Onnx_SparseTensorProto) -> Onnx_ModelProto {
        model(nodes: [node("Add", ["x", "w"], ["y"])], sparse: [s])
    }

    func testSparseInitializerExpandsWithCoordinatesOrLinearIndices() throws {
        let byCoordinates = sparse(dims: [2, 3], indices: int64Tensor("", dims: [2, 2], values: [0, 1, 1, 2]), values: [5, 7])
        let linear = sparse(dims: [2, 3], indices: int64Tensor("", dims: [2], values: [1, 5]), values: [5, 7])
        for s in [byCoordinates, linear] {
            let w = try XCTUnwrap(try load(modelWithSparse(s)).graph.initializer(named: "w")).tensor
            XCTAssertEqual(w.shape, [2, 3])
            XCTAssertEqual(w.array(of: Float.self), [0, 5, 0, 0, 0, 7])
        }
    }

    func testSparseInitializerSizesAndCoordinatesAreChecked() {
        let one = int64Tensor("", dims: [1, 2], values: [0, 0])
        // dims whose product overflows.
        assertRefused(modelWithSparse(sparse(dims: [1 << 40, 1 << 40], indices: one, values: [1])), mentions: ["sparse tensor 'w'"])
        // A coordinate of 2^62 (its flat index overflowed).
        assertRefused(modelWithSparse(sparse(dims: [4, 4], indices: int64Tensor("", dims: [1, 2], values: [1 << 62, 1]), values: [1])),
                      mentions: ["coordinate \(1 << 62)", "dimension 0"])
        // Out of range in dimension 1 but not as a flat index (0 * 3 + 4 = 4 < 6): it landed on [1, 1].
        assertRefused(modelWithSparse(sparse(dims: [2, 3], indices: int64Tensor("", dims: [1, 2], values: [0, 4]), values: [1])),
                      mentions: ["coordinate 4", "dimension 1"])
        assertRefused(modelWithSparse(sparse(dims: [2, 3], indices: int64Tensor("", dims: [1, 2], values: [-1, 4]), values: [1])),
                      mentions: ["coordinate -1"])
        // A linear index out of range, negative dims, and indices of the wrong shape.
        assertRefused(modelWithSparse(sparse(dims: [2, 3], indices: int64Tensor("", dims: [1], values: [6]), values: [1])),
                      mentions: ["index 6"])
        assertRefused(modelWithSparse(sparse(dims: [-2, 3], indices: int64Tensor("", dims: [1], values: [0]), values: [1])),
                      mentions: ["-2"])
        assertRefused(modelWithSparse(sparse(dims: [2, 3], indices: int64Tensor("", dims: [3], values: [0, 1, 2]), values: [1])),
                      mentions: ["indices of shape [3]"])
        assertRefused(modelWithSparse(sparse(dims: [2, 3], indices: int64Tensor("", dims: [1, 3], values: [0, 1, 2]), values: [1])),
                      mentions: ["indices of shape [1, 3]"])
    }

    /// A few bytes of sparse tensor declaring a dense form larger than the machine's memory.
    func testSparseInitializerLargerThanMemoryIsOutOfMemory() {
        let s = sparse(dims: [1 << 19, 1 << 20], indices: int64Tensor("", dims: [1, 2], values: [0, 0]), values: [1])
        assertRefused(modelWithSparse(s), status: 6, mentions: ["sparse tensor 'w'"])
    }

    // MARK: Class 6: single assignment and opsets

    func testTwoNodesWritingOneValueAreRefused() {
        let proto = model(nodes: [node("Relu", ["x"], ["t"], name: "first"), node("Neg", ["x"], ["t"], name: "second"),
                                  node("Identity", ["t"], ["y"])])
        assertRefused(proto, mentions: ["node 'second' (Neg) writes 't'", "node 'first' (Relu)"])
        assertRefused(model(nodes: [node("Split", ["x"], ["y", "y"], name: "split")]), mentions: ["node 'split' (Split) writes 'y'"])
    }

    func testNodeWritingAGraphInputOrAnInitializerIsRefused() {
        assertRefused(model(nodes: [node("Relu", ["x"], ["x"], name: "relu"), node("Identity", ["x"], ["y"])]),
                      mentions: ["node 'relu' (Relu) writes 'x'", "graph input"])
        let w = tensorProto("w", dims: [1], floats: [1])
        assertRefused(model(nodes: [node("Relu", ["x"], ["w"], name: "relu"), node("Add", ["x", "w"], ["y"])], initializers: [w]),
                      mentions: ["writes 'w'", "initializer"])
        assertRefused(model(nodes: [node("Add", ["x", "w"], ["y"])], initializers: [w, w]), mentions: ["two initializers named 'w'"])
        assertRefused(model(nodes: [node("Add", ["x", "x"], ["y"])], inputs: ["x", "x"]), mentions: ["input 'x' twice"])
    }

    /// Subgraphs may not write a value of the enclosing graph defined before their node; an
    /// initializer that is also a declared input, omitted optional outputs, and a subgraph
    /// writing a name the outer graph defines only later (accepted by onnx.checker) all load.
    func testSubgraphsAndValidFormsOfNameReuse() throws {
        func branch(_ output: String) -> Onnx_AttributeProto {
            var g = Onnx_GraphProto()
            g.name = "branch"
            g.node = [node("Identity", ["x"], [output], name: "inner")]
            g.output = [valueInfo(output)]
            var a = Onnx_AttributeProto()
            a.name = "then_branch"
            a.type = .graph
            a.g = g
            return a
        }
        var ifNode = node("If", ["c"], ["y"], name: "if")
        ifNode.attribute = [branch("t")]
        assertRefused(model(nodes: [node("Relu", ["x"], ["t"]), ifNode, node("Identity", ["t"], ["z"])],
                            inputs: ["c", "x"], outputs: ["y", "z"]),
                      mentions: ["subgraph 'then_branch' of node 'if' (If)", "enclosing graph"])
        _ = try load(model(nodes: [ifNode, node("Relu", ["x"], ["t"]), node("Identity", ["t"], ["z"])],
                           inputs: ["c", "x"], outputs: ["y", "z"]))
        let w = tensorProto("w", dims: [1], floats: [1])
        _ = try load(model(nodes: [node("Dropout", ["x"], ["y", ""]), node("Add", ["y", "w"], ["z"])],
                           inputs: ["x", "w"], outputs: ["z"], initializers: [w]))
    }

    func testOpsetNewerThanKerfKnowsIsRefusedWithItsVersion() throws {
        let nodes = [node("Relu", ["x"], ["y"])]
        assertRefused(model(nodes: nodes, opsets: [("", 99)]), mentions: ["opset 99", "1 to \(Model.newestDefaultOpset)"])
        assertRefused(model(nodes: nodes, opsets: [("ai.onnx", Int64(Model.newestDefaultOpset) + 1)]),
                      mentions: ["opset \(Model.newestDefaultOpset + 1)", "ai.onnx"])
        assertRefused(model(nodes: nodes, opsets: [("", 0)]), mentions: ["opset 0"])
        XCTAssertEqual(try load(model(nodes: nodes, opsets: [("", Int64(Model.newestDefaultOpset))])).defaultOpset,
                       Model.newestDefaultOpset)
        // Other domains keep their own versions.
        XCTAssertNoThrow(try load(model(nodes: nodes, opsets: [("", 17), ("com.example", 99)])))
    }
}
