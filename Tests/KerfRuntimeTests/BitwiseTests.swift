import XCTest
@testable import KerfCore
@testable import KerfRuntime

/// BitShift and the Bitwise ops at every integer width against Swift's own operators.
final class BitwiseTests: XCTestCase {
    func testShiftsOfEveryWidthMatchTheDefinition() throws {
        func check<T: NumericElement & FixedWidthInteger>(_: T.Type, _ dtype: DType) throws {
            let xs: [T] = [T.min, T.max, 0, 1, T(truncatingIfNeeded: -3), T(truncatingIfNeeded: 0x5A)]
            let amounts: [T] = [0, 1, T(truncatingIfNeeded: T.bitWidth - 1), T(truncatingIfNeeded: T.bitWidth), T(truncatingIfNeeded: -1), T.max]
            let x = Tensor(shape: [xs.count, 1], values: xs), s = Tensor(shape: [amounts.count], values: amounts)
            let left = try bitwise(.shiftLeft, x, s, op: "BitShift").array(of: T.self)
            let right = try bitwise(.shiftRight, x, s, op: "BitShift").array(of: T.self)
            for (i, v) in xs.enumerated() {
                for (j, a) in amounts.enumerated() {
                    let inRange = a >= 0 && a < T.bitWidth
                    XCTAssertEqual(left[i * amounts.count + j], inRange ? v &<< a : 0, "\(dtype) \(v) << \(a)")
                    XCTAssertEqual(right[i * amounts.count + j], inRange ? v >> a : (v < 0 ? ~0 : 0), "\(dtype) \(v) >> \(a)")
                }
            }
            let and = try bitwise(.and, x, s, op: "BitwiseAnd").array(of: T.self)
            let not = try bitwiseNot(x).array(of: T.self)
            for (i, v) in xs.enumerated() {
                XCTAssertEqual(not[i], ~v)
                for (j, a) in amounts.enumerated() { XCTAssertEqual(and[i * amounts.count + j], v & a) }
            }
        }
        try check(Int8.self, .int8)
        try check(UInt8.self, .uint8)
        try check(Int16.self, .int16)
        try check(UInt16.self, .uint16)
        try check(Int32.self, .int32)
        try check(UInt32.self, .uint32)
        try check(Int64.self, .int64)
        try check(UInt64.self, .uint64)
    }

    func testFloatAndBoolOperandsAreRefused() {
        let f = Tensor(shape: [2], values: [Float(1), 2])
        XCTAssertThrowsError(try bitwise(.xor, f, f, op: "BitwiseXor"))
        XCTAssertThrowsError(try bitwiseNot(Tensor(dtype: .bool, shape: [1], storage: Tensor(shape: [1], values: [UInt8(1)]).storage)))
    }
}
