#if canImport(Glibc)
import Glibc
#endif
import KerfCKernels

/// Softmax along the middle axis of x viewed as [outer, n, inner]: for each (o, i) the n
/// elements at (o * n + j) * inner + i are normalized.
/// With `log`, y = log-softmax. Max-subtracted for stability; x and y may alias. The
/// outer * inner rows are split over up to `threads` threads when there are enough of them.
public func softmax(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, outer: Int, n: Int, inner: Int, log: Bool,
                    threads: Int = 1) {
    parallelRanges(outer * inner, threads: threads, grain: max(1, 16384 / max(n, 1))) { rows in
        if inner == 1 && !log && cpuHasAVX512 {  // KerfCKernels/softmax_avx512.c
            kerf_softmax_rows_avx512(x + rows.lowerBound * n, y + rows.lowerBound * n, rows.count, n)
            return
        }
        if inner == 1 && !log && cpuHasAVX2 {
            kerf_softmax_rows_avx2(x + rows.lowerBound * n, y + rows.lowerBound * n, rows.count, n)
            return
        }
        for row in rows {
            if inner == 1 {
                softmaxRow(x + row * n, y + row * n, n: n, log: log)
            } else {
                let o = row / inner, i = row % inner
                softmaxStrided(x + o * n * inner + i, y + o * n * inner + i, n: n, stride: inner, log: log)
            }
        }
    }
}

/// One contiguous row of n elements: the max and the sum in eight lanes, each exp computed once.
@inline(__always)
private func softmaxRow(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, n: Int, log: Bool) {
    let vectorEnd = n - n % 8
    var lanes = SIMD8<Float>(repeating: -.infinity)
    var j = 0
    while j < vectorEnd {
        lanes = pointwiseMax(lanes, UnsafeRawPointer(x + j).loadUnaligned(as: SIMD8<Float>.self))
        j += 8
    }
    var m = lanes.max()
    while j < n { m = max(m, x[j]); j += 1 }
    if log {
        var sum: Float = 0
        for j in 0..<n { sum += fastExp(x[j] - m) }
        let l = logf(sum)
        for j in 0..<n { y[j] = x[j] - m - l }
        return
    }
    for j in 0..<n { y[j] = fastExp(x[j] - m) }
    var sums = SIMD8<Float>()
    j = 0
    while j < vectorEnd {
        sums += UnsafeRawPointer(y + j).loadUnaligned(as: SIMD8<Float>.self)
        j += 8
    }
    var sum = sums.sum()
    while j < n { sum += y[j]; j += 1 }
    let scale = 1 / sum
    for j in 0..<n { y[j] *= scale }
}

/// One row whose n elements are `stride` apart.
@inline(__always)
private func softmaxStrided(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, n: Int, stride: Int, log: Bool) {
    var m = -Float.infinity
    for j in 0..<n { m = max(m, x[j * stride]) }
    var sum: Float = 0
    for j in 0..<n { sum += fastExp(x[j * stride] - m) }
    if log {
        let l = logf(sum)
        for j in 0..<n { y[j * stride] = x[j * stride] - m - l }
    } else {
        let scale = 1 / sum
        for j in 0..<n { y[j * stride] = fastExp(x[j * stride] - m) * scale }
    }
}

/// y[j] = x[j] / factor (x[j] * factor with `multiply`) + mask[maskPerElement ? j : 0] for j <
/// count, two roundings as the Div (Mul) and Add operators round (sixteen lanes with AVX-512,
/// KerfCKernels/softmax_avx512.c). x and y may alias.
public func scaleAndAddRow(_ x: UnsafePointer<Float>, count n: Int, _ factor: Float, multiply: Bool, mask: UnsafePointer<Float>,
                           maskPerElement: Bool, into y: UnsafeMutablePointer<Float>) {
    if cpuHasAVX512 {
        kerf_scale_add_row_avx512(x, n, factor, multiply ? 1 : 0, mask, maskPerElement ? 1 : 0, y)
        return
    }
    for j in 0..<n {
        let m = mask[maskPerElement ? j : 0]
        y[j] = (multiply ? x[j] * factor : x[j] / factor) + m
    }
}

/// The input gradient of a softmax over contiguous rows of n floats, for the rows `rows`:
/// dX = Y·(dY − Σ dY·Y) (`log` false, Y the softmax) or dX = dY − exp(Y)·Σ dY (`log` true, Y the
/// log-softmax; exp by `fastExp`). Sums in eight-lane chains. dX may alias dY.
public func softmaxBackwardRows(dY g: UnsafePointer<Float>, y: UnsafePointer<Float>, dX: UnsafeMutablePointer<Float>,
                                rows: Range<Int>, n: Int, log: Bool) {
    for r in rows {
        let gs = g + r * n, ys = y + r * n, out = dX + r * n
        var a0 = SIMD8<Float>(), a1 = a0
        var j = 0
        while j + 16 <= n {
            let p = UnsafeRawPointer(gs + j), q = UnsafeRawPointer(ys + j)
            if log {
                a0 += p.loadUnaligned(as: SIMD8<Float>.self)
                a1 += p.loadUnaligned(fromByteOffset: 32, as: SIMD8<Float>.self)
            } else {
                a0 = a0.addingProduct(p.loadUnaligned(as: SIMD8<Float>.self), q.loadUnaligned(as: SIMD8<Float>.self))
                a1 = a1.addingProduct(p.loadUnaligned(fromByteOffset: 32, as: SIMD8<Float>.self),
                                      q.loadUnaligned(fromByteOffset: 32, as: SIMD8<Float>.self))
            }
            j += 16
        }
        var s = (a0 + a1).sum()
        while j < n {
            s += log ? gs[j] : gs[j] * ys[j]
            j += 1
        }
        if log {
            for j in 0..<n { out[j] = gs[j] - fastExp(ys[j]) * s }
        } else {
            for j in 0..<n { out[j] = ys[j] * (gs[j] - s) }
        }
    }
}

/// Double-precision `softmax` (the same contract, one thread): max-subtracted, libm exp.
public func softmax(_ x: UnsafePointer<Double>, _ y: UnsafeMutablePointer<Double>, outer: Int, n: Int, inner: Int, log: Bool) {
    for row in 0..<outer * inner {
        let o = row / inner, i = row % inner
        let src = x + o * n * inner + i, dst = y + o * n * inner + i
        var m = -Double.infinity
        for j in 0..<n { m = max(m, src[j * inner]) }
        var sum: Double = 0
        for j in 0..<n { sum += exp(src[j * inner] - m) }
        if log {
            let l = Glibc.log(sum)
            for j in 0..<n { dst[j * inner] = src[j * inner] - m - l }
        } else {
            for j in 0..<n { dst[j * inner] = exp(src[j * inner] - m) / sum }
        }
    }
}
