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
    if let failure = closeness(actual, expected, absolute: absolute, relative: relative) {
        XCTFail(failure + context(message()), file: file, line: line)
    }
}

/// Asserts that two float or double tensors have the same dtype and shape, then compares their
/// elements as `assertClose` on arrays does. Tensors of other dtypes fail: compare those exactly.
public func assertClose(
    _ actual: Tensor, _ expected: Tensor, absolute: Double = 0, relative: Double = 0,
    _ message: @autoclosure () -> String = "", file: StaticString = #filePath, line: UInt = #line
) {
    if let failure = closeness(actual, expected, absolute: absolute, relative: relative) {
        XCTFail(failure + context(message()), file: file, line: line)
    }
}

/// Asserts that `actual` holds as many tensors as `expected` (at least one), each close to the
/// one at the same position as `assertClose` on two tensors says.
public func assertClose(
    _ actual: [Tensor], _ expected: [Tensor], absolute: Double = 0, relative: Double = 0,
    _ message: @autoclosure () -> String = "", file: StaticString = #filePath, line: UInt = #line
) {
    guard actual.count == expected.count, !expected.isEmpty else {
        return XCTFail("assertClose: \(actual.count) tensors, expected \(expected.count)" + context(message()), file: file, line: line)
    }
    for (i, (a, e)) in zip(actual, expected).enumerated() {
        if let failure = closeness(a, e, absolute: absolute, relative: relative) {
            XCTFail("output \(i): " + failure + context(message()), file: file, line: line)
        }
    }
}

/// Why `actual` is not close to `expected` as `assertClose` defines it, or nil when it is.
func closeness<T: BinaryFloatingPoint>(_ actual: [T], _ expected: [T], absolute: Double, relative: Double) -> String? {
    precondition(absolute >= 0 && relative >= 0, "assertClose: tolerances must be non-negative")
    guard actual.count == expected.count else { return "assertClose: \(actual.count) elements, expected \(expected.count)" }
    guard !expected.isEmpty else { return "assertClose: nothing to compare" }
    var outside = 0, worst = 0, worstExcess = -Double.infinity
    for i in expected.indices {
        let a = Double(actual[i]), e = Double(expected[i])
        if a == e { continue }
        let difference = abs(a - e), allowed = max(absolute, relative * abs(e))
        if e.isFinite && difference <= allowed { continue }
        outside += 1
        // NaN differences and differences where nothing was allowed rank first.
        let excess = difference.isNaN || allowed == 0 ? Double.infinity : difference / allowed
        if excess > worstExcess { worstExcess = excess; worst = i }
    }
    guard outside > 0 else { return nil }
    let a = actual[worst], e = expected[worst]
    return "assertClose: \(outside) of \(expected.count) elements differ by more than max(\(absolute), \(relative)·|expected|); "
        + "worst at index \(worst): \(a), expected \(e) (difference \(abs(Double(a) - Double(e))), "
        + "allowed \(max(absolute, relative * abs(Double(e)))))"
}

/// Why tensor `actual` is not close to `expected` (dtype, then shape, then elements), or nil.
func closeness(_ actual: Tensor, _ expected: Tensor, absolute: Double, relative: Double) -> String? {
    guard actual.dtype == expected.dtype else { return "assertClose: dtype \(actual.dtype), expected \(expected.dtype)" }
    guard actual.shape == expected.shape else { return "assertClose: shape \(actual.shape), expected \(expected.shape)" }
    switch expected.dtype {
    case .float:
        return closeness(actual.array(of: Float.self), expected.array(of: Float.self), absolute: absolute, relative: relative)
    case .double:
        return closeness(actual.array(of: Double.self), expected.array(of: Double.self), absolute: absolute, relative: relative)
    default:
        return "assertClose: \(expected.dtype) tensors are compared exactly, not within a tolerance"
    }
}

private func context(_ message: String) -> String { message.isEmpty ? "" : " (\(message))" }
