import FoundationEssentials
import XCTest
@testable import KerfCore
#if canImport(Glibc)
import Glibc
#endif

/// .npy / .npz files (the CLI's feeds) whose headers declare sizes the data does not hold or
/// that overflow: refused with `.invalidArgument`, never a trap or a huge allocation.
final class HostileNumpyFileTests: XCTestCase {
    private func npy(_ header: String, data: [UInt8] = []) -> Data {
        let h = Array(header.utf8)
        return Data([0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(h.count & 0xFF), UInt8(h.count >> 8)] + h + data)
    }

    private func assertInvalidArgument(_ data: Data, mentions: String? = nil, line: UInt = #line) {
        XCTAssertThrowsError(try NumpyFile.decode(data, name: "x.npy"), line: line) { error in
            XCTAssertEqual((error as? KerfError)?.status, 1, "\(error)", line: line)
            if let mentions { XCTAssertTrue("\(error)".contains(mentions), "\(error)", line: line) }
        }
    }

    func testDeclaredSizesMustMatchTheData() throws {
        // 2^33 floats declared, none present: refused before allocating 32 GiB.
        assertInvalidArgument(npy("{'descr': '<f4', 'fortran_order': False, 'shape': (8589934592,), }"), mentions: "needs 34359738368")
        // A shape whose byte count overflows Int.
        assertInvalidArgument(npy("{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904, 4), }"),
                              mentions: "more than Int holds")
        // A ')' before the '(' of the shape.
        assertInvalidArgument(npy("{'descr': '<f4', 'fortran_order': False, 'shape': )2(, }"))
        let ok = try NumpyFile.decode(npy("{'descr': '<i2', 'fortran_order': False, 'shape': (2,), }", data: [1, 0, 2, 0]), name: "x")
        XCTAssertEqual(ok.array(of: Int16.self), [1, 2])
    }

    /// A zip64 entry whose extra field is cut short, or whose size is near 2^64.
    func testZip64SizesAreChecked() throws {
        let dir = "/tmp/kerf-hostile-npz-\(getpid())"
        mkdir(dir, 0o755)
        defer { _ = try? FileManager.default.removeItem(atPath: dir) }
        func entry(extra: [UInt8]) -> [UInt8] {
            let name = Array("x.npy".utf8)
            var h: [UInt8] = [0x50, 0x4b, 0x03, 0x04, 20, 0, 0, 0, 0, 0]  // signature, version, flags, method
            h += [UInt8](repeating: 0, count: 8)  // time, date, crc
            h += [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]  // sizes: in the zip64 extra field
            h += [UInt8(name.count), 0, UInt8(extra.count), 0]
            return h + name + extra
        }
        let huge: [UInt8] = [1, 0, 16, 0] + [UInt8](repeating: 0xFF, count: 16)  // sizes 2^64 - 1
        let cut: [UInt8] = [1, 0, 16, 0, 0, 0]  // claims 16 bytes, holds 2 (and the file ends)
        for (k, bytes) in [entry(extra: huge), entry(extra: cut)].enumerated() {
            let path = "\(dir)/\(k).npz"
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            XCTAssertThrowsError(try NumpyFile.readArchive(path: path)) { XCTAssertEqual(($0 as? KerfError)?.status, 1, "\($0)") }
        }
    }
}
