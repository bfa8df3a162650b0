import KerfCore

/// The gradient of Gather(data, indices, axis) with respect to data (of `shape`): zeros with
/// each slice of dY added at its index (rows gathered twice get both gradients).
func gatherGradient(dY: Tensor, indices: Tensor, shape: [Int], axis rawAxis: Int) throws -> Tensor {
    try requireGradientElement(dY, "GatherGrad")
    let axis = try normalizeAxis(rawAxis, rank: shape.count, what: "Gather axis")
    guard shape.allSatisfy({ $0 >= 0 }) else { throw KerfError.shapeMismatch("GatherGrad: negative dim in \(shape)") }
    let expected = Array(shape[..<axis]) + indices.shape + Array(shape[(axis + 1)...])
    guard dY.shape == expected else {
        throw KerfError.shapeMismatch("GatherGrad: gradient \(dY.shape) is not the gathered shape \(expected)")
    }
    let dim = shape[axis]
    let resolved = try resolvedIndices(indices, axisSize: dim, "Gather index")
    let outer = shape[..<axis].reduce(1, *), inner = shape[(axis + 1)...].reduce(1, *)
    let out = try Tensor(zeros: dY.dtype, shape: shape)
    switch dY.dtype {
    case .double: scatterAdd(dY, resolved, out, outer: outer, dim: dim, inner: inner, Double.self)
    default: scatterAdd(dY, resolved, out, outer: outer, dim: dim, inner: inner, Float.self)
    }
    return out
}

private func scatterAdd<T: GradientElement>(_ dY: Tensor, _ indices: [Int], _ out: Tensor, outer: Int, dim: Int, inner: Int, _: T.Type) {
    let g = dY.storage.pointer.assumingMemoryBound(to: T.self)
    let o = out.storage.pointer.assumingMemoryBound(to: T.self)
    let k = indices.count
    for a in 0..<outer {
        for (j, index) in indices.enumerated() {
            let from = g + (a * k + j) * inner, to = o + (a * dim + index) * inner
            for t in 0..<inner { to[t] += from[t] }
        }
    }
}
