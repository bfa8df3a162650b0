import KerfCore
import KerfKernels
#if canImport(Glibc)
import Glibc
#endif

// ReduceSum, ReduceMean, ReduceMax, ReduceMin, ReduceProd, ReduceL1, ReduceL2, ReduceSumSquare,
// ReduceLogSum, ReduceLogSumExp. Axes are an attribute before opset 18 (13 for ReduceSum) and an optional
// input from then on, where `noop_with_empty_axes` decides what no axes means.

enum ReduceKind { case sum, mean, max, min, prod, l1, l2, sumSquare, logSum, logSumExp }

/// The associative reductions everything else is built from.
enum ReduceCombine { case sum, prod, max, min }

/// Reduces `x` (a numeric, non-half dtype) over the dims in `reduced`; the result keeps the
/// reduced dims with size 1.
func reduceCore(_ op: ReduceCombine, _ x: Tensor, reduced: Set<Int>) throws -> Tensor {
    var keptShape = x.shape
    for d in reduced where d < keptShape.count { keptShape[d] = 1 }
    let runs = reductionRuns(shape: x.shape, reduced: reduced)
    guard runs.contains(where: { $0.reduced }) else { return x.reshaped(keptShape) }
    struct Body: NumericBody {
        let op: ReduceCombine, x: Tensor, runs: [(size: Int, reduced: Bool)]
        func run<T: NumericElement>(_: T.Type) throws -> Tensor {
            var sizes = runs.map { $0.size }
            var current = x
            // Innermost reduced run first; each pass shrinks one run to size 1.
            for g in runs.indices.reversed() where runs[g].reduced {
                let outer = sizes[..<g].reduce(1, *), n = sizes[g], inner = sizes[(g + 1)...].reduce(1, *)
                var next = try Tensor(uninitialized: x.dtype, shape: [outer * inner])
                current.withElements(as: T.self) { src in
                    next.withMutableElements(as: T.self) { dst in
                        let s = src.baseAddress!, d = dst.baseAddress!
                        switch op {
                        case .sum where T.self == Float.self && inner == 1:
                            // Rows of floats: several accumulator chains (the order of the sum differs from
                            // one chain's, as MLAS's vector sums do).
                            let rows = UnsafeRawPointer(s).assumingMemoryBound(to: Float.self)
                            let sums = UnsafeMutableRawPointer(d).assumingMemoryBound(to: Float.self)
                            for o in 0..<outer { sums[o] = rowSum(rows + o * n, count: n) }
                        case .sum: reduceMiddle(s, outer: outer, n: n, inner: inner, d, initial: T.zero, T.add)
                        case .prod: reduceMiddle(s, outer: outer, n: n, inner: inner, d, initial: T(fromDouble: 1), T.mul)
                        case .max:
                            reduceMiddle(s, outer: outer, n: n, inner: inner, d, initial: T(fromDouble: -.infinity)) { a, b in
                                (T.isFloatingPoint && a != a) ? a : (b != b ? b : Swift.max(a, b))
                            }
                        case .min:
                            reduceMiddle(s, outer: outer, n: n, inner: inner, d, initial: T(fromDouble: .infinity)) { a, b in
                                (T.isFloatingPoint && a != a) ? a : (b != b ? b : Swift.min(a, b))
                            }
                        }
                    }
                }
                current = next
                sizes[g] = 1
            }
            return current
        }
    }
    return try dispatchNumeric(x.dtype, Body(op: op, x: x, runs: runs)).reshaped(keptShape)
}

/// One ONNX reduction. `axes` nil or empty means all axes, or none with `noopWithEmptyAxes`.
func reduceTensor(_ kind: ReduceKind, _ x: Tensor, axes: [Int]?, keepDims: Bool, noopWithEmptyAxes: Bool) throws -> Tensor {
    if x.dtype == .float16 || x.dtype == .bfloat16 {
        return try reduceTensor(kind, x.convertedToFloat32(), axes: axes, keepDims: keepDims, noopWithEmptyAxes: noopWithEmptyAxes)
            .convertedFromFloat32(to: x.dtype)
    }
    if x.dtype == .bool {
        guard kind == .max || kind == .min else { throw KerfError.unsupported("\(kind) reduction of bool tensors is not supported") }
        let bytes = Tensor(dtype: .uint8, shape: x.shape, storage: x.storage)
        let r = try reduceTensor(kind, bytes, axes: axes, keepDims: keepDims, noopWithEmptyAxes: noopWithEmptyAxes)
        return try Tensor(dtype: .bool, shape: r.shape, storage: mapNumeric(r, UInt8.self) { $0 != 0 ? 1 : 0 }.storage)
    }
    if (kind == .logSum || kind == .logSumExp) && !x.dtype.isFloatingPoint {
        let r = try reduceTensor(kind, try cast(x, to: .double), axes: axes, keepDims: keepDims, noopWithEmptyAxes: noopWithEmptyAxes)
        return try cast(r, to: x.dtype)
    }
    let rank = x.rank
    let reduced: Set<Int>
    if let axes, !axes.isEmpty {
        reduced = Set(try axes.map { try normalizeAxis($0, rank: rank, what: "reduction axis") })
    } else {
        reduced = noopWithEmptyAxes ? [] : Set(0..<rank)
    }
    var outShape: [Int] = []
    var count = 1
    for d in 0..<rank {
        if reduced.contains(d) {
            count *= x.shape[d]
            if keepDims { outShape.append(1) }
        } else {
            outShape.append(x.shape[d])
        }
    }

    struct Map: NumericBody {
        enum Kind { case abs, square, sqrt, divide(Int) }
        let x: Tensor, kind: Kind
        func run<T: NumericElement>(_: T.Type) throws -> Tensor {
            switch kind {
            case .abs: return try mapNumeric(x, T.self) { $0 < T.zero ? T.sub(T.zero, $0) : $0 }
            case .square: return try mapNumeric(x, T.self) { T.mul($0, $0) }
            case .sqrt: return try mapNumeric(x, T.self) { T(fromDouble: $0.doubleValue.squareRoot()) }
            case .divide(let n):
                let d = T(fromDouble: Double(n))
                return try mapNumeric(x, T.self) { T.div($0, d) }
            }
        }
    }
    let result: Tensor
    switch kind {
    case .sum: result = try reduceCore(.sum, x, reduced: reduced)
    case .prod: result = try reduceCore(.prod, x, reduced: reduced)
    case .max: result = try reduceCore(.max, x, reduced: reduced)
    case .min: result = try reduceCore(.min, x, reduced: reduced)
    case .mean:
        let s = try reduceCore(.sum, x, reduced: reduced)
        result = count == 1 ? s : try dispatchNumeric(x.dtype, Map(x: s, kind: .divide(count)))
    case .l1:
        result = try reduceCore(.sum, try dispatchNumeric(x.dtype, Map(x: x, kind: .abs)), reduced: reduced)
    case .sumSquare:
        result = try reduceCore(.sum, try dispatchNumeric(x.dtype, Map(x: x, kind: .square)), reduced: reduced)
    case .l2:
        let s = try reduceCore(.sum, try dispatchNumeric(x.dtype, Map(x: x, kind: .square)), reduced: reduced)
        result = try dispatchNumeric(x.dtype, Map(x: s, kind: .sqrt))
    case .logSum:
        result = try unaryFloat(try reduceCore(.sum, x, reduced: reduced), { logf($0) }, { Glibc.log($0) })
    case .logSumExp:
        // log(sum(exp(x - m))) + m with m the max over finite... values (0 when not finite).
        let m = try unaryFloat(try reduceCore(.max, x, reduced: reduced), { $0.isFinite ? $0 : 0 }, { $0.isFinite ? $0 : 0 })
        let e = try unaryFloat(try arithmetic(.sub, x, m), { expf($0) }, { Glibc.exp($0) })
        let l = try unaryFloat(try reduceCore(.sum, e, reduced: reduced), { logf($0) }, { Glibc.log($0) })
        result = try arithmetic(.add, l, m)
    }
    return result.reshaped(outShape)
}

enum ReduceOps {
    static func register(_ r: inout [String: OperatorFactory]) {
        let ops: [(String, ReduceKind, Int)] = [
            ("ReduceSum", .sum, 13), ("ReduceMean", .mean, 18), ("ReduceMax", .max, 18), ("ReduceMin", .min, 18),
            ("ReduceProd", .prod, 18), ("ReduceL1", .l1, 18), ("ReduceL2", .l2, 18),
            ("ReduceSumSquare", .sumSquare, 18), ("ReduceLogSum", .logSum, 18), ("ReduceLogSumExp", .logSumExp, 18),
        ]
        for (name, kind, axesInputOpset) in ops {
            r[name] = { c in
                let keepDims = try c.int("keepdims", default: 1) != 0
                let noop = try c.int("noop_with_empty_axes", default: 0) != 0
                let axesAttribute = try c.ints("axes")
                let axesFromInput = c.opset >= axesInputOpset
                return ClosureOperator { inputs in
                    let x = try inputs.required(0)
                    var axes = axesAttribute
                    if axesFromInput, let t = inputs.optional(1) { axes = try intValues(t, "\(name) axes") }
                    return [try reduceTensor(kind, x, axes: axes, keepDims: keepDims, noopWithEmptyAxes: axesFromInput && noop)]
                }
            }
        }
    }
}
