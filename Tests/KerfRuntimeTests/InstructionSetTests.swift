import XCTest
@testable import KerfKernels

/// The cap itself. Every kernel variant is checked against the reference by running the whole
/// suite once per level the CPU supports (`make test-swift` sets KERF_MAX_ISA for each).
final class InstructionSetTests: XCTestCase {
    func testTheCapLowersTheLevelAndIsLiftedAfterwards() {
        let before = InstructionSet.inUse
        XCTAssertLessThanOrEqual(before, InstructionSet.cpu)
        XCTAssertEqual(InstructionSet.supported.first, .scalar)
        XCTAssertEqual(InstructionSet.supported.last, InstructionSet.cpu)
        InstructionSet.withCap(.scalar) {
            XCTAssertEqual(InstructionSet.inUse, .scalar)
            XCTAssertFalse(cpuHasAVX2 || cpuHasAVX512 || cpuHasAVX512VBMI || int8GemmAccelerated || int8GemmHasVNNI)
        }
        if InstructionSet.cpu >= .avx512 {
            InstructionSet.withCap(.avx2) {
                XCTAssertEqual(InstructionSet.inUse, .avx2)
                XCTAssertTrue(cpuHasAVX2)
                XCTAssertFalse(cpuHasAVX512 || cpuHasAVX512VBMI || int8GemmHasVNNI)
                XCTAssertTrue(int8GemmSaturatesPairs)
            }
        }
        XCTAssertEqual(InstructionSet.inUse, before)
        XCTAssertEqual(InstructionSet.allCases.map(\.name), ["scalar", "avx2", "avx_vnni", "avx512", "avx512_vnni"])
    }
}
