// XCTest is absent from the static standard library that `make release` builds against, and
// `swift build` compiles this target too: there it holds only what needs no XCTest.
#if canImport(XCTest)
import KerfCore
import XCTest

/// Asserts that `actual` has as many elements as `expected`, and that each element lies within
/// `max(absolute, relative · |expected|)` of the expected one. An infinite expected element must
/// be matched exactly; a NaN on either side is never close. An empty `expected` fails too: a
/// comparison of nothing asserts nothing.
///
/// On failure, one message gives the number of elements outside the tolerance and the worst of
/// them (the largest difference relative to what was allowed there) with its index.
public func assertClose<T: BinaryFloatingPoint>(
    _ actual: [T], _ expected: [T], absolute: Double = 0, relative: Double = 0,
    _ message: @autoclosure () -> String = "", file: StaticString = #filePath, line: UInt = #line
) {
    fail(closeness(actual, expected, absolute: absolute, relative: relative), message(), file, line)
}

/// Asserts that two float or double tensors have the same dtype and shape, then compares their
/// elements as `assertClose` on arrays does. Tensors of other dtypes fail: compare those exactly.
public func assertClose(
    _ actual: Tensor, _ expected: Tensor, absolute: Double = 0, relative: Double = 0,
    _ message: @autoclosure () -> String = "", file: StaticString = #filePath, line: UInt = #line
) {
    fail(closeness(actual, expected, absolute: absolute, relative: relative), message(), file, line)
}

/// Asserts that `actual` holds as many tensors as `expected` (at least one), each close to the
/// one at the same position as `assertClose` on two tensors says.
public func assertClose(
    _ actual: [Tensor], _ expected: [Tensor], absolute: Double = 0, relative: Double = 0,
    _ message: @autoclosure () -> String = "", file: StaticString = #filePath, line: UInt = #line
) {
    guard actual.count == expected.count, !expected.isEmpty else {
        return fail("assertClose: \(actual.count) tensors, expected \(expected.count)", message(), file, line)
    }
    for (i, (a, e)) in zip(actual, expected).enumerated() {
        fail(closeness(a, e, absolute: absolute, relative: relative).map { "output \(i): " + $0 }, message(), file, line)
    }
}

private func context(_ message: String) -> String { message.isEmpty ? "" : " (\(message))" }

/// Reports `failure`, when there is one, with the caller's message at the caller's line.
private func fail(_ failure: String?, _ message: String, _ file: StaticString, _ line: UInt) {
    if let failure { XCTFail(failure + context(message), file: file, line: line) }
}
#endif
