import KerfCore
import KerfKernels

/// The inverse of NumPy broadcasting: `x` summed over the axes along which a tensor of `shape`
/// was broadcast to x's shape (leading axes x has beyond `shape`, and axes where `shape` has 1).
/// Throws when `shape` does not broadcast to x's shape.
func sumToShape(_ x: Tensor, shape: [Int]) throws -> Tensor {
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
    case .double: accumulate(x, into: out, Double.self, strides: strides)
    default: accumulate(x, into: out, Float.self, strides: strides)
    }
    return out
}

/// out[Σ i_d·strides[d]] += x[i] over every index i of x (row-major); the last axis is the
/// inner loop, either a vector add (stride 1) or a sum into one element (stride 0).
private func accumulate<T: GradientElement>(_ x: Tensor, into out: Tensor, _: T.Type, strides: [Int]) {
    let shape = x.shape, rank = shape.count
    let inner = shape[rank - 1], innerStride = strides[rank - 1]
    let rows = inner == 0 ? 0 : x.count / inner
    let src = x.storage.pointer.assumingMemoryBound(to: T.self)
    let dst = out.storage.pointer.assumingMemoryBound(to: T.self)
    var index = [Int](repeating: 0, count: rank)
    var offset = 0
    for row in 0..<rows {
        let from = src + row * inner, to = dst + offset
        if innerStride == 0 {
            var s: T = 0
            for j in 0..<inner { s += from[j] }
            to[0] += s
        } else {
            for j in 0..<inner { to[j] += from[j] }
        }
        var d = rank - 2
        while d >= 0 {
            index[d] += 1
            offset += strides[d]
            if index[d] < shape[d] { break }
            offset -= strides[d] * shape[d]
            index[d] = 0
            d -= 1
        }
    }
}
