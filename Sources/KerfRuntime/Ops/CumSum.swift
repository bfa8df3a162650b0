import KerfCore

// CumSum (opset 11, 14) and CumProd (opset 26): running sums (products) along an axis given as
// a one-element int32/int64 tensor; `exclusive` leaves each element out of its own sum
// (product), `reverse` runs from the end.

/// The running combination a CumSum or CumProd node computes.
enum CumulativeKind {
    case sum, product

    var opName: String { self == .sum ? "CumSum" : "CumProd" }
}

/// Running sums or products of `x` (a numeric dtype; float16/bfloat16 computed in float32,
/// integers wrapping) along `axis`, of x's shape and dtype. An exclusive scan starts from 0
/// (sum) or 1 (product).
func cumulative(_ kind: CumulativeKind, _ x: Tensor, axis rawAxis: Int, exclusive: Bool, reverse: Bool) throws -> Tensor {
    guard x.rank >= 1 else { throw KerfError.invalidArgument("\(kind.opName) needs an input of rank >= 1") }
    let axis = try normalizeAxis(rawAxis, rank: x.rank, what: "\(kind.opName) axis")
    if x.dtype == .float16 || x.dtype == .bfloat16 {
        return try cumulative(kind, x.convertedToFloat32(), axis: axis, exclusive: exclusive, reverse: reverse)
            .convertedFromFloat32(to: x.dtype)
    }
    struct Body: NumericBody {
        let kind: CumulativeKind, x: Tensor, axis: Int, exclusive: Bool, reverse: Bool
        func run<T: NumericElement>(_: T.Type) throws -> Tensor {
            let identity = kind == .sum ? T.zero : T(fromDouble: 1)
            let combine: (T, T) -> T = kind == .sum ? T.add : T.mul
            let n = x.shape[axis]
            let outer = x.shape[..<axis].reduce(1, *), inner = x.shape[(axis + 1)...].reduce(1, *)
            var out = try Tensor(uninitialized: x.dtype, shape: x.shape)
            x.withElements(as: T.self) { src in
                out.withMutableElements(as: T.self) { dst in
                    var sums = [T](repeating: identity, count: inner)
                    for o in 0..<outer {
                        for i in 0..<inner { sums[i] = identity }
                        for step in 0..<n {
                            let row = (o * n + (reverse ? n - 1 - step : step)) * inner
                            for i in 0..<inner {
                                let v = src[row + i]
                                if exclusive {
                                    dst[row + i] = sums[i]
                                    sums[i] = combine(sums[i], v)
                                } else {
                                    sums[i] = combine(sums[i], v)
                                    dst[row + i] = sums[i]
                                }
                            }
                        }
                    }
                }
            }
            return out
        }
    }
    return try dispatchNumeric(x.dtype, Body(kind: kind, x: x, axis: axis, exclusive: exclusive, reverse: reverse))
}

enum CumSumOps {
    static func register(_ r: inout [String: OperatorFactory]) {
        for kind in [CumulativeKind.sum, .product] {
            let name = kind.opName
            r[name] = { c in
                let exclusive = try c.int("exclusive", default: 0) != 0
                let reverse = try c.int("reverse", default: 0) != 0
                return ClosureOperator { inputs in
                    let axes = try intValues(try inputs.required(1, "axis"), "\(name) axis")
                    guard axes.count == 1 else { throw KerfError.invalidArgument("\(name) axis must hold one value, got \(axes.count)") }
                    return [try cumulative(kind, try inputs.required(0), axis: axes[0], exclusive: exclusive, reverse: reverse)]
                }
            }
        }
    }
}
