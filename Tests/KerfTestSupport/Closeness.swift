import KerfCore

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
