import FoundationEssentials
import OnnxProto
import SwiftProtobuf
import XCTest
@testable import KerfCore

/// Nodes need the inputs and outputs their operator takes (`Graph.validateNodeArity`): the
/// fuzzer's regressions/maxpool-without-outputs.onnx (a MaxPool with no outputs) and
/// regressions/dequantize-without-inputs.onnx (a DequantizeLinear with no inputs) crashed
/// session creation.
final class NodeArityTests: XCTestCase {
    private func model(_ nodes: [Onnx_NodeProto]) -> Onnx_ModelProto {
        var g = Onnx_GraphProto()
        g.name = "g"
        g.node = nodes
        var x = Onnx_ValueInfoProto(), y = Onnx_ValueInfoProto()
        x.name = "x"
        y.name = "y"
        g.input = [x]
        g.output = [y]
        var m = Onnx_ModelProto()
        m.irVersion = 8
        m.graph = g
        var opset = Onnx_OperatorSetIdProto()
        opset.version = 17
        m.opsetImport = [opset]
        return m
    }

    private func node(_ op: String, _ name: String, _ inputs: [String], _ outputs: [String]) -> Onnx_NodeProto {
        var n = Onnx_NodeProto()
        n.opType = op
        n.name = name
        n.input = inputs
        n.output = outputs
        return n
    }

    func testANodeWithoutOutputsIsRefusedNamingIt() throws {
        let bytes: Data = try model([node("Relu", "r", ["x"], ["y"]), node("MaxPool", "pool", ["x"], [])]).serializedBytes()
        XCTAssertThrowsError(try Model.load(bytes: bytes)) { error in
            guard let e = error as? KerfError else { return XCTFail("not a KerfError: \(error)") }
            XCTAssertEqual(e.status, 3, "\(e)")
            XCTAssertTrue(e.message.contains("node 'pool' (MaxPool) has no outputs"), e.message)
        }
    }

    func testANodeInASubgraphWithoutOutputsIsRefused() throws {
        var branch = Onnx_GraphProto()
        branch.name = "then"
        branch.node = [node("Relu", "inner", ["x"], [])]
        var attribute = Onnx_AttributeProto()
        attribute.name = "then_branch"
        attribute.type = .graph
        attribute.g = branch
        var ifNode = node("If", "if", ["x"], ["y"])
        ifNode.attribute = [attribute]
        let bytes: Data = try model([ifNode]).serializedBytes()
        XCTAssertThrowsError(try Model.load(bytes: bytes)) { error in
            XCTAssertTrue((error as? KerfError)?.message.contains("node 'inner' (Relu) has no outputs") ?? false, "\(error)")
        }
    }

    func testADefaultDomainNodeWithTooFewInputsIsRefusedNamingIt() throws {
        let bytes: Data = try model([node("DequantizeLinear", "dqw", [], ["w"]), node("Conv", "conv", ["x", "w"], ["y"])]).serializedBytes()
        XCTAssertThrowsError(try Model.load(bytes: bytes)) { error in
            guard let e = error as? KerfError else { return XCTFail("not a KerfError: \(error)") }
            XCTAssertEqual(e.status, 3, "\(e)")
            XCTAssertTrue(e.message.contains("node 'dqw' (DequantizeLinear) has 0 inputs"), e.message)
            XCTAssertTrue(e.message.contains("takes at least 2"), e.message)
        }
    }

    func testOptionalSlotsAndOtherDomainsFollowTheirOwnMinimum() throws {
        // Reshape's opset-1 form takes one input; LSTM's outputs are all optional; a node of
        // another domain needs an output but any number of inputs.
        var custom = node("Thing", "t", [], ["z"])
        custom.domain = "com.example"
        var opset = Onnx_OperatorSetIdProto()
        opset.domain = "com.example"
        opset.version = 1
        var m = model([node("Reshape", "r", ["x"], ["y"]), node("LSTM", "l", ["x", "w", "r"], []), custom])
        m.opsetImport.append(opset)
        XCTAssertNoThrow(try Model.load(bytes: try m.serializedBytes()))
        custom.output = []
        m.graph.node[2] = custom
        XCTAssertThrowsError(try Model.load(bytes: try m.serializedBytes())) { error in
            XCTAssertTrue((error as? KerfError)?.message.contains("node 't' (Thing) has no outputs") ?? false, "\(error)")
        }
    }

    func testAnOmittedOptionalOutputStillLoads() throws {
        // Dropout's mask omitted by an empty name, a first output present: valid.
        let bytes: Data = try model([node("Dropout", "d", ["x"], ["y", ""])]).serializedBytes()
        XCTAssertNoThrow(try Model.load(bytes: bytes))
    }
}
