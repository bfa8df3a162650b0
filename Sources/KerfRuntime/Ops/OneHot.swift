import KerfCore

// OneHot (opset 9, 11, 28): indices (any numeric dtype, truncated to integers), a one-element
// depth, and values [off, on] of the output's dtype. The output inserts a dim of size depth at
// `axis` (-1 by default: innermost): `on` where that coordinate equals the index (negative
// indices count from depth), `off` elsewhere; indices outside [-depth, depth) give all `off`.

/// The elements of a numeric tensor converted to Int (floats truncated toward zero, saturated).
func truncatedIntegers(_ t: Tensor, _ what: String) throws -> [Int] {
    if t.dtype == .int64 || t.dtype == .int32 { return try intValues(t, what) }
    struct Body: NumericBody {
        let t: Tensor
        func run<T: NumericElement>(_: T.Type) throws -> [Int] { t.withElements(as: T.self) { $0.map { Int($0.int64Bits) } } }
    }
    return try dispatchNumeric(t.dtype == .float16 || t.dtype == .bfloat16 ? .float : t.dtype, Body(t: t.convertedToFloat32()))
}

/// OneHot of `indices` with `depth` classes, filling from `values` = [off, on].
func oneHot(_ indices: Tensor, depth: Int, values: Tensor, axis rawAxis: Int) throws -> Tensor {
    guard depth >= 0 else { throw KerfError.invalidArgument("OneHot depth must not be negative, got \(depth)") }
    guard values.rank == 1, values.count == 2 else {
        throw KerfError.invalidArgument("OneHot values must be a rank-1 tensor [off_value, on_value], got shape \(values.shape)")
    }
    let axis = try normalizeAxis(rawAxis, rank: indices.rank + 1, what: "OneHot axis")
    var shape = indices.shape
    shape.insert(depth, at: axis)
    try checkedElementCount(shape, dtype: values.dtype, "OneHot")
    let positions = try truncatedIntegers(indices, "OneHot indices")
    let inner = indices.shape[axis...].reduce(1, *)
    // The output offset of each index's `on` element, nil where the index is out of range.
    let targets: [Int?] = positions.enumerated().map { i, v in
        let r = v < 0 ? v + depth : v
        guard r >= 0, r < depth else { return nil }
        return ((i / inner) * depth + r) * inner + i % inner
    }
    if values.dtype == .string {
        guard values.strings.count == 2 else { throw KerfError.invalidArgument("string tensor has the wrong number of elements") }
        var strings = Array(repeating: values.strings[0], count: shape.reduce(1, *))
        for case let t? in targets { strings[t] = values.strings[1] }
        return Tensor(shape: shape, strings: strings)
    }
    struct Fill: ByteElementBody {
        let values: Tensor, shape: [Int], targets: [Int?]
        func run<E>(_: E.Type) throws -> Tensor {
            var out = try Tensor(uninitialized: values.dtype, shape: shape)
            values.withElements(as: E.self) { v in
                out.withMutableElements(as: E.self) { dst in
                    if dst.isEmpty { return }
                    dst.initialize(repeating: v[0])
                    for case let t? in targets { dst[t] = v[1] }
                }
            }
            return out
        }
    }
    return try dispatchBytes(values.dtype, "OneHot", Fill(values: values, shape: shape, targets: targets))
}

enum OneHotOps {
    static func register(_ r: inout [String: OperatorFactory]) {
        r["OneHot"] = { c in
            let axis = try c.int("axis", default: -1)
            return ClosureOperator { inputs in
                let depths = try truncatedIntegers(try inputs.required(1, "depth"), "OneHot depth")
                guard depths.count == 1 else { throw KerfError.invalidArgument("OneHot depth must hold one value, got \(depths.count)") }
                return [try oneHot(try inputs.required(0), depth: depths[0], values: try inputs.required(2, "values"), axis: axis)]
            }
        }
    }
}
