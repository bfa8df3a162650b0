import FoundationEssentials
import XCTest
@testable import KerfCore

final class ModelRoundTripTests: XCTestCase {
    private func tinyModel() -> Model {
        let w = Tensor(shape: [2, 3], values: [Float(1), 2, 3, 4, 5, 6])
        var node = Node(name: "mm", opType: "MatMul", inputs: ["x", "w"], outputs: ["y"])
        node.attributes = [Attribute(name: "note", value: .string(Data("kept".utf8)))]
        let graph = Graph(name: "g", nodes: [node],
                          inputs: [ValueInfo(name: "x", type: .tensor(dtype: .float, shape: [.symbol("N"), .value(2)]))],
                          outputs: [ValueInfo(name: "y", type: .tensor(dtype: .float, shape: [.symbol("N"), .value(3)]))],
                          initializers: [Initializer(name: "w", tensor: w)])
        let model = Model(graph: graph)
        model.metadataProps = [("author", "kerf")]
        return model
    }

    func testSerializeAndLoadKeepsGraphAndValues() throws {
        let loaded = try Model.load(bytes: try tinyModel().serialized())
        XCTAssertEqual(loaded.defaultOpset, 17)
        XCTAssertEqual(loaded.graph.nodes.map(\.opType), ["MatMul"])
        XCTAssertEqual(loaded.graph.inputs[0].shape, [.symbol("N"), .value(2)])
        XCTAssertEqual(loaded.graph.initializers[0].tensor.array(of: Float.self), [1, 2, 3, 4, 5, 6])
        XCTAssertEqual(loaded.metadataProps.first?.value, "kerf")
        guard case .string(let s)? = loaded.graph.nodes[0].attribute("note") else { return XCTFail("attribute lost") }
        XCTAssertEqual(String(decoding: s, as: UTF8.self), "kept")
    }

    func testGarbageAndEmptyBytesAreInvalidModels() {
        XCTAssertThrowsError(try Model.load(bytes: Data())) { XCTAssertEqual(($0 as? KerfError)?.status, 3) }
        XCTAssertThrowsError(try Model.load(bytes: Data([0xFF, 0xFF, 0xFF, 0x0F, 0x01]))) { XCTAssertEqual(($0 as? KerfError)?.status, 3) }
    }

    func testInt4TensorsPackAndUnpack() throws {
        let t = Tensor(shape: [3], values: [UInt8(0x07), UInt8(0xF9), UInt8(0x01)]).reshaped([3])
        var int4 = try Tensor(zeros: .int4, shape: [3])
        int4.withMutableElements(as: UInt8.self) { for i in 0..<3 { $0[i] = t.array(of: UInt8.self)[i] } }
        let decoded = try Tensor.decode(int4.encode(name: "q"), external: nil)
        XCTAssertEqual(decoded.array(of: Int8.self), [7, -7, 1])
    }

    func testAtomicSaveLeavesOriginalWhenDirectoryIsMissing() throws {
        let dir = "/tmp/kerf-core-tests-\(getpid())"
        mkdir(dir, 0o755)
        defer { _ = try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/m.onnx"
        try tinyModel().save(path: path)
        let before = try FileIO.read(path: path)
        XCTAssertThrowsError(try tinyModel().save(path: dir + "/missing/m.onnx")) { XCTAssertEqual(($0 as? KerfError)?.status, 2) }
        XCTAssertEqual(try FileIO.read(path: path), before)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir), ["m.onnx"], "no temporary file left behind")
    }

    func testNpyRoundTrip() throws {
        let t = Tensor(shape: [2, 2], values: [Float(1.5), -2, 3, 4])
        let back = try NumpyFile.decode(try NumpyFile.encode(t), name: "t")
        XCTAssertEqual(back.shape, [2, 2])
        XCTAssertEqual(back.array(of: Float.self), [1.5, -2, 3, 4])
    }
}
#if canImport(Glibc)
import Glibc
#endif
