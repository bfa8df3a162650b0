import KerfCore
#if canImport(Glibc)
import Glibc
#endif

// Hardmax (opset 1, 11, 13) and LpNormalization (opset 1, 22): each row along one axis of x
// (viewed as [outer, n, inner]) mapped to a row of the same length.

/// hardmax of x viewed as [outer, n, inner]: y[o, j, i] = 1 where j is the first index of the
/// largest x[o, ·, i] (the first NaN, as numpy's argmax), else 0.
func hardmaxRows<T: NumericElement>(_ x: UnsafePointer<T>, _ y: UnsafeMutablePointer<T>, outer: Int, n: Int, inner: Int) {
    let one = T(fromDouble: 1)
    for o in 0..<outer {
        for i in 0..<inner {
            let base = o * n * inner + i
            var best = 0
            for j in 0..<n {
                y[base + j * inner] = T.zero
                let v = x[base + j * inner], b = x[base + best * inner]
                if b == b && (v != v || v > b) { best = j }
            }
            if n > 0 { y[base + best * inner] = one }
        }
    }
}

/// Lp normalization of x viewed as [outer, n, inner]: y = x / (Σ_j |x[o, j, i]|^p)^(1/p) for
/// p 1 or 2 (the norm summed in double); a row of norm 0 stays 0.
func lpNormalizeRows<T: BinaryFloatingPoint>(_ x: UnsafePointer<T>, _ y: UnsafeMutablePointer<T>, outer: Int, n: Int, inner: Int, p: Int) {
    for o in 0..<outer {
        for i in 0..<inner {
            let base = o * n * inner + i
            var sum = 0.0
            for j in 0..<n {
                let v = Double(x[base + j * inner])
                sum += p == 1 ? Swift.abs(v) : v * v
            }
            let norm = T(p == 1 ? sum : sum.squareRoot())
            for j in 0..<n { y[base + j * inner] = norm == 0 ? 0 : x[base + j * inner] / norm }
        }
    }
}

/// x's shape split around `axis` as (outer, n, inner); before opset 13 Hardmax coerces x to 2-D
/// [before axis, from axis on] (`flattenFromAxis`).
private func rows(_ x: Tensor, axis rawAxis: Int, flattenFromAxis: Bool, op: String) throws -> (outer: Int, n: Int, inner: Int) {
    let axis = try normalizeAxis(rawAxis, rank: x.rank, what: "\(op) axis")
    let outer = x.shape[..<axis].reduce(1, *)
    if flattenFromAxis { return (outer, x.shape[axis...].reduce(1, *), 1) }
    return (outer, x.shape[axis], x.shape[(axis + 1)...].reduce(1, *))
}

/// Hardmax of a numeric tensor (float16/bfloat16 through float32, which is exact here).
func hardmax(_ x: Tensor, axis: Int, flattenFromAxis: Bool) throws -> Tensor {
    if x.dtype == .float16 || x.dtype == .bfloat16 {
        return try hardmax(x.convertedToFloat32(), axis: axis, flattenFromAxis: flattenFromAxis).convertedFromFloat32(to: x.dtype)
    }
    let (outer, n, inner) = try rows(x, axis: axis, flattenFromAxis: flattenFromAxis, op: "Hardmax")
    struct Body: NumericBody {
        let x: Tensor, outer: Int, n: Int, inner: Int
        func run<T: NumericElement>(_: T.Type) throws -> Tensor {
            var out = try Tensor(uninitialized: x.dtype, shape: x.shape)
            x.withElements(as: T.self) { src in
                out.withMutableElements(as: T.self) { dst in
                    hardmaxRows(src.baseAddress!, dst.baseAddress!, outer: outer, n: n, inner: inner)
                }
            }
            return out
        }
    }
    return try dispatchNumeric(x.dtype, Body(x: x, outer: outer, n: n, inner: inner))
}

/// LpNormalization of a float32 or double tensor along `axis`, p 1 or 2.
func lpNormalization(_ x: Tensor, axis: Int, p: Int) throws -> Tensor {
    let (outer, n, inner) = try rows(x, axis: axis, flattenFromAxis: false, op: "LpNormalization")
    struct Body: FloatBody {
        let x: Tensor, outer: Int, n: Int, inner: Int, p: Int
        func run<T: NumericElement & BinaryFloatingPoint>(_: T.Type) throws -> Tensor {
            var out = try Tensor(uninitialized: x.dtype, shape: x.shape)
            x.withElements(as: T.self) { src in
                out.withMutableElements(as: T.self) { dst in
                    lpNormalizeRows(src.baseAddress!, dst.baseAddress!, outer: outer, n: n, inner: inner, p: p)
                }
            }
            return out
        }
    }
    return try dispatchFloat(x.dtype, "LpNormalization", Body(x: x, outer: outer, n: n, inner: inner, p: p))
}

enum AxisNormalizationOps {
    static func register(_ r: inout [String: OperatorFactory]) {
        r["Hardmax"] = { c in
            let flatten = c.opset < 13
            let axis = try c.int("axis", default: flatten ? 1 : -1)
            return ClosureOperator { [try hardmax(try $0.required(0), axis: axis, flattenFromAxis: flatten)] }
        }
        r["LpNormalization"] = { c in
            let axis = try c.int("axis", default: -1), p = try c.int("p", default: 2)
            guard p == 1 || p == 2 else { throw KerfError.invalidModel("LpNormalization p must be 1 or 2, got \(p)") }
            return ClosureOperator { inputs in
                try withFloat32(inputs) { [try lpNormalization(try $0.required(0), axis: axis, p: p)] }
            }
        }
    }
}
