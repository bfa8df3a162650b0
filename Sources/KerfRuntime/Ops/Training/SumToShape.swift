import KerfCore
import KerfKernels

/// The inverse of NumPy broadcasting: `x` summed over the axes along which a tensor of `shape`
/// was broadcast to x's shape (leading axes x has beyond `shape`, and axes where `shape` has 1).
/// Throws when `shape` does not broadcast to x's shape. With `threads` > 1 and a result much
/// smaller than x, blocks of x's rows are summed apart and their sums added in block order.
func sumToShape(_ x: Tensor, shape: [Int], threads: Int = 1) throws -> Tensor {
    try requireGradientElement(x, "SumToShape")
    let rank = x.rank
    guard shape.count <= rank else {
        throw KerfError.shapeMismatch("SumToShape: \(shape) has more axes than the gradient \(x.shape)")
    }
    // The target's shape aligned right against x's; outStride 0 where the axis is summed.
    let aligned = [Int](repeating: 1, count: rank - shape.count) + shape
    for d in 0..<rank where aligned[d] != x.shape[d] && aligned[d] != 1 {
        throw KerfError.shapeMismatch("SumToShape: \(shape) does not broadcast to the gradient's shape \(x.shape)")
    }
    if aligned == x.shape { return x.reshaped(shape) }
    let outStrides = denseStrides(aligned)
    let strides = (0..<rank).map { aligned[$0] == x.shape[$0] ? outStrides[$0] : 0 }
    let out = try Tensor(zeros: x.dtype, shape: shape)
    switch x.dtype {
    case .double: accumulate(x, into: out, Double.self, strides: strides, threads: threads)
    default: accumulate(x, into: out, Float.self, strides: strides, threads: threads)
    }
    return out
}

/// `accumulate` over all rows of x, in blocks of rows on up to `threads` threads when x is
/// large and `out` small (each block into its own zeroed copy of out, added in block order).
private func accumulate<T: GradientElement>(_ x: Tensor, into out: Tensor, _: T.Type, strides: [Int], threads: Int) {
    let inner = x.shape[x.rank - 1]
    let rows = inner == 0 ? 0 : x.count / inner
    let blocks = min(threads, rows, x.count / (1 << 15), x.count / max(1, 4 * out.count))
    guard blocks > 1 else {
        accumulate(x, rows: 0..<rows, into: out.storage.pointer.assumingMemoryBound(to: T.self), T.self, strides: strides)
        return
    }
    let size = out.count
    let partial = UnsafeMutablePointer<T>.allocate(capacity: blocks * size)
    partial.initialize(repeating: 0, count: blocks * size)
    defer { partial.deallocate() }
    parallelRanges(blocks, threads: threads, grain: 1) { range in
        for b in range { accumulate(x, rows: (b * rows / blocks)..<((b + 1) * rows / blocks), into: partial + b * size, T.self, strides: strides) }
    }
    let dst = out.storage.pointer.assumingMemoryBound(to: T.self)
    for b in 0..<blocks {
        for i in 0..<size { dst[i] += partial[b * size + i] }
    }
}

/// dst[Σ i_d·strides[d]] += x[i] over the indices i of x (row-major) in the rows `rows` (a row:
/// the last axis); the last axis is the inner loop, either a vector add (stride 1) or a sum
/// into one element (stride 0).
private func accumulate<T: GradientElement>(_ x: Tensor, rows: Range<Int>, into dst: UnsafeMutablePointer<T>, _: T.Type, strides: [Int]) {
    let shape = x.shape, rank = shape.count
    let inner = shape[rank - 1], innerStride = strides[rank - 1]
    let src = x.storage.pointer.assumingMemoryBound(to: T.self)
    // The output offset of each row (over the axes before the last).
    var walk = Odometer(shape: Array(shape.dropLast()), strides: Array(strides.dropLast()), at: rows.lowerBound)
    for row in rows {
        let from = src + row * inner, to = dst + walk.offset
        if innerStride == 0 {
            var s: T = 0
            for j in 0..<inner { s += from[j] }
            to[0] += s
        } else {
            for j in 0..<inner { to[j] += from[j] }
        }
        walk.advance()
    }
}
