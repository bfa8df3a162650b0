import KerfCore

// Range: start, start + delta, ... up to (not including) limit; all three are scalars of one
// dtype (float, double, int16, int32, int64; float16/bfloat16 computed in float32).

private struct RangeBody: NumericBody {
    let start: Tensor, limit: Tensor, delta: Tensor
    func run<T: NumericElement>(_: T.Type) throws -> Tensor {
        func scalar(_ t: Tensor, _ what: String) throws -> T {
            guard t.count == 1 else { throw KerfError.shapeMismatch("Range \(what) must be a scalar, got shape \(t.shape)") }
            return t.withElements(as: T.self) { $0[0] }
        }
        let s = try scalar(start, "start"), l = try scalar(limit, "limit"), d = try scalar(delta, "delta")
        if T.isFloatingPoint {
            let sd = s.doubleValue, ld = l.doubleValue, dd = d.doubleValue
            guard dd != 0, sd.isFinite, ld.isFinite, dd.isFinite else {
                throw KerfError.invalidArgument("Range needs finite start/limit and a non-zero finite delta (got \(sd), \(ld), \(dd))")
            }
            let n = Swift.max(((ld - sd) / dd).rounded(.up), 0)
            guard n <= Double(maxComputedTensorBytes) else { throw KerfError.outOfMemory("Range would produce \(n) elements") }
            let count = Int(n)
            try checkedElementCount([count], dtype: start.dtype, "Range")
            return rangeTensor(start: s, delta: d, count: count)
        }
        guard let si = (s as? any FixedWidthInteger).map({ Int64(truncatingIfNeeded: $0) }),
              let li = (l as? any FixedWidthInteger).map({ Int64(truncatingIfNeeded: $0) }),
              let di = (d as? any FixedWidthInteger).map({ Int64(truncatingIfNeeded: $0) }) else {
            throw KerfError.unsupported("Range of \(start.dtype) is not supported")
        }
        guard di != 0 else { throw KerfError.invalidArgument("Range delta must not be 0") }
        let (diff, overflow) = li.subtractingReportingOverflow(si)
        guard !overflow else { throw KerfError.outOfMemory("Range from \(si) to \(li) is too large") }
        var count: Int64 = 0
        if di > 0 && diff > 0 { count = (diff - 1) / di + 1 }
        if di < 0 && diff < 0 { count = (diff + 1) / di + 1 }
        guard count <= Int64(maxComputedTensorBytes) else { throw KerfError.outOfMemory("Range would produce \(count) elements") }
        let n = Int(count)
        try checkedElementCount([n], dtype: start.dtype, "Range")
        return rangeTensor(start: s, delta: d, count: n)
    }
}

enum RangeOps {
    static func register(_ r: inout [String: OperatorFactory]) {
        r["Range"] = { _ in
            ClosureOperator { inputs in
                let start = try inputs.required(0, "start"), limit = try inputs.required(1, "limit")
                let delta = try inputs.required(2, "delta")
                guard start.dtype == limit.dtype, start.dtype == delta.dtype else {
                    throw KerfError.shapeMismatch("Range inputs must share a dtype (\(start.dtype), \(limit.dtype), \(delta.dtype))")
                }
                return try withFloat32([start, limit, delta]) { xs in
                    [try dispatchNumeric(xs[0]!.dtype, RangeBody(start: xs[0]!, limit: xs[1]!, delta: xs[2]!))]
                }
            }
        }
    }
}

/// [start, start + delta, ...] of `count` elements, accumulated in the element type as the
/// ONNX function body of Range does.
private func rangeTensor<T: NumericElement>(start: T, delta: T, count: Int) -> Tensor {
    var values = [T](repeating: T.zero, count: count)
    var v = start
    for i in 0..<count {
        values[i] = v
        v = T.add(v, delta)
    }
    return Tensor(shape: [count], values: values)
}
