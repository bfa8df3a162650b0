import KerfCore
import KerfKernels
#if canImport(Glibc)
import Glibc
#endif

/// dX of Softmax (from Y: Y·(dY − Σ dY·Y)) or LogSoftmax (from Y: dY − exp(Y)·Σ dY), the sums
/// over `axis`; `coerced` (opsets before 13) sums over all axes from `axis` on.
func softmaxGradient(dY: Tensor, y: Tensor, axis rawAxis: Int, log: Bool, coerced: Bool, threads: Int = 1) throws -> Tensor {
    try requireGradientElement(dY, "SoftmaxGrad")
    guard dY.shape == y.shape, dY.dtype == y.dtype else {
        throw KerfError.shapeMismatch("SoftmaxGrad: gradient \(dY.shape) and output \(y.shape) differ")
    }
    let axis = try normalizeAxis(rawAxis, rank: y.rank, what: "Softmax axis")
    let n = coerced ? y.shape[axis...].reduce(1, *) : y.shape[axis]
    let inner = coerced ? 1 : y.shape[(axis + 1)...].reduce(1, *)
    let outer = y.shape[..<axis].reduce(1, *)
    let out = try Tensor(uninitialized: y.dtype, shape: y.shape)
    switch y.dtype {
    case .double: softmaxBackward(dY, y, out, outer: outer, n: n, inner: inner, log: log, threads: threads, Double.self)
    case .float where inner == 1:  // contiguous rows: KerfKernels' vectorized rows
        let g = UnsafePointer(dY.storage.pointer.assumingMemoryBound(to: Float.self))
        let v = UnsafePointer(y.storage.pointer.assumingMemoryBound(to: Float.self))
        let o = out.storage.pointer.assumingMemoryBound(to: Float.self)
        parallelRanges(outer, threads: threads, grain: max(1, (1 << 14) / max(1, n))) { rows in
            softmaxBackwardRows(dY: g, y: v, dX: o, rows: rows, n: n, log: log)
        }
    default: softmaxBackward(dY, y, out, outer: outer, n: n, inner: inner, log: log, threads: threads, Float.self)
    }
    return out
}

private func softmaxBackward<T: GradientElement>(_ dY: Tensor, _ y: Tensor, _ out: Tensor, outer: Int, n: Int, inner: Int,
                                                 log: Bool, threads: Int, _: T.Type) {
    let g = dY.storage.pointer.assumingMemoryBound(to: T.self)
    let v = y.storage.pointer.assumingMemoryBound(to: T.self)
    let o = out.storage.pointer.assumingMemoryBound(to: T.self)
    parallelRanges(outer, threads: threads, grain: max(1, (1 << 14) / max(1, n * inner))) { rows in
        for a in rows {
            for b in 0..<inner {
                let base = a * n * inner + b
                var s: T = 0
                for j in 0..<n {
                    let k = base + j * inner
                    s += log ? g[k] : g[k] * v[k]
                }
                for j in 0..<n {
                    let k = base + j * inner
                    o[k] = log ? g[k] - T(exp(Double(v[k]))) * s : v[k] * (g[k] - s)
                }
            }
        }
    }
}
