import FoundationEssentials
import XCTest
@testable import KerfCore
#if canImport(Glibc)
import Glibc
#endif

/// Loading with initializer payloads read apart from the protobuf (`ModelBytes`).
final class ModelBytesTests: XCTestCase {
    /// A float and a uint4 initializer large enough to be read apart, and a small one that stays inline.
    private func modelWithPayloads() throws -> (Model, [Float], [UInt8]) {
        let big = (0..<3000).map { Float($0) * 0.5 - 7 }
        var int4 = try Tensor(zeros: .uint4, shape: [9000])
        let nibbles = (0..<9000).map { UInt8($0 % 16) }
        int4.withMutableElements(as: UInt8.self) { for i in 0..<9000 { $0[i] = nibbles[i] } }
        let graph = Graph(name: "g", nodes: [Node(name: "id", opType: "Identity", inputs: ["x"], outputs: ["y"])],
                          inputs: [ValueInfo(name: "x", type: .tensor(dtype: .float, shape: [.value(2)]))],
                          outputs: [ValueInfo(name: "y", type: nil)],
                          initializers: [Initializer(name: "small", tensor: Tensor(shape: [2], values: [Float(1), 2])),
                                         Initializer(name: "big", tensor: Tensor(shape: [3, 1000], values: big)),
                                         Initializer(name: "nibbles", tensor: int4)])
        return (Model(graph: graph), big, nibbles)
    }

    func testPayloadsReadApartKeepTheirValues() throws {
        let (model, big, nibbles) = try modelWithPayloads()
        let bytes = try model.serialized()
        let split = try XCTUnwrap(try bytes.withUnsafeBytes { try ModelBytes.read(MemoryByteSource(bytes: $0)) })
        XCTAssertEqual(Set(split.payloads.keys), [1, 2], "the small initializer stays inline")
        XCTAssertLessThan(split.stripped.count, 2000)
        let dir = "/tmp/kerf-core-payloads-\(getpid())"
        mkdir(dir, 0o755)
        defer { _ = try? FileManager.default.removeItem(atPath: dir) }
        try model.save(path: dir + "/m.onnx")
        for loaded in [try Model.load(bytes: bytes), try Model.load(path: dir + "/m.onnx")] {
            XCTAssertEqual(loaded.graph.initializer(named: "small")!.tensor.array(of: Float.self), [1, 2])
            let b = loaded.graph.initializer(named: "big")!.tensor
            XCTAssertEqual(b.shape, [3, 1000])
            XCTAssertTrue(b.array(of: Float.self) == big)
            XCTAssertTrue(loaded.graph.initializer(named: "nibbles")!.tensor.array(of: UInt8.self) == nibbles)
            XCTAssertTrue(try loaded.serialized() == bytes, "saved back byte for byte")
        }
    }

    func testWrongPayloadSizesAndTruncatedBytesAreInvalidModels() throws {
        let (model, _, _) = try modelWithPayloads()
        let whole = try model.serialized()
        // dims [3, 1000] (unpacked varints: field 1 = 3, field 1 = 1000) become [3, 999].
        var bytes = whole
        let dims: [UInt8] = [0x08, 0x03, 0x08, 0xE8, 0x07]
        let range = try XCTUnwrap(bytes.firstRange(of: dims))
        bytes.replaceSubrange(range, with: [0x08, 0x03, 0x08, 0xE7, 0x07])
        XCTAssertNotNil(try bytes.withUnsafeBytes { try ModelBytes.read(MemoryByteSource(bytes: $0)) })
        XCTAssertThrowsError(try Model.load(bytes: bytes)) { XCTAssertEqual(($0 as? KerfError)?.status, 3, "\($0)") }
        for cut in [whole.count - 1, whole.count / 2, 3] {
            XCTAssertNil(try whole.prefix(cut).withUnsafeBytes { try ModelBytes.read(MemoryByteSource(bytes: $0)) })
            XCTAssertThrowsError(try Model.load(bytes: whole.prefix(cut))) { XCTAssertEqual(($0 as? KerfError)?.status, 3, "\($0)") }
        }
    }

    /// Bytes the reader does not expect (here a second graph field, which protobuf would merge)
    /// are left to the protobuf parser.
    func testUnexpectedShapesAreParsedWhole() throws {
        let (model, _, _) = try modelWithPayloads()
        let bytes = try model.serialized()
        let split = try XCTUnwrap(try bytes.withUnsafeBytes { try ModelBytes.read(MemoryByteSource(bytes: $0)) })
        XCTAssertFalse(split.payloads.isEmpty)
        var twice = bytes
        twice += [0x3A, 0x00]
        XCTAssertNil(try twice.withUnsafeBytes { try ModelBytes.read(MemoryByteSource(bytes: $0)) })
        XCTAssertNoThrow(try Model.load(bytes: twice))
    }
}
