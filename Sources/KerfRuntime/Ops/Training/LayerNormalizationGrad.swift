import KerfCore

/// The gradients of LayerNormalization Y = (X − mean)·invStd·scale + bias, normalized over the
/// axes from `axis` on: [dX (X's shape), dScale, dBias (scale's shape)]. The statistics are
/// recomputed from X (population variance, `epsilon` inside the square root).
func layerNormalizationGradient(dY: Tensor, x: Tensor, scale: Tensor, axis rawAxis: Int, epsilon: Double) throws -> [Tensor] {
    try requireGradientElement(x, "LayerNormalizationGrad")
    guard dY.shape == x.shape, dY.dtype == x.dtype, scale.dtype == x.dtype else {
        throw KerfError.shapeMismatch("LayerNormalizationGrad: gradient \(dY.dtype) \(dY.shape), input \(x.dtype) \(x.shape) and scale \(scale.dtype) differ")
    }
    let axis = try normalizeAxis(rawAxis, rank: x.rank, what: "LayerNormalization axis")
    let n = x.shape[axis...].reduce(1, *), rows = x.shape[..<axis].reduce(1, *)
    guard scale.count == n else {
        throw KerfError.unsupported("LayerNormalizationGrad with a scale of \(scale.count) elements broadcast over \(n)")
    }
    let dX = try Tensor(uninitialized: x.dtype, shape: x.shape)
    let dScale = try Tensor(zeros: x.dtype, shape: scale.shape), dBias = try Tensor(zeros: x.dtype, shape: scale.shape)
    switch x.dtype {
    case .double: layerNormBackward(dY, x, scale, dX, dScale, dBias, rows: rows, n: n, epsilon: epsilon, Double.self)
    default: layerNormBackward(dY, x, scale, dX, dScale, dBias, rows: rows, n: n, epsilon: epsilon, Float.self)
    }
    return [dX, dScale, dBias]
}

private func layerNormBackward<T: GradientElement>(_ dY: Tensor, _ x: Tensor, _ scale: Tensor, _ dX: Tensor, _ dScale: Tensor,
                                                   _ dBias: Tensor, rows: Int, n: Int, epsilon: Double, _: T.Type) {
    let g = dY.storage.pointer.assumingMemoryBound(to: T.self)
    let v = x.storage.pointer.assumingMemoryBound(to: T.self)
    let w = scale.storage.pointer.assumingMemoryBound(to: T.self)
    let dx = dX.storage.pointer.assumingMemoryBound(to: T.self)
    let dw = dScale.storage.pointer.assumingMemoryBound(to: T.self)
    let db = dBias.storage.pointer.assumingMemoryBound(to: T.self)
    guard n > 0 else { return }
    // One row's normalized input, computed once and read by both passes.
    let xhat = UnsafeMutablePointer<T>.allocate(capacity: n)
    defer { xhat.deallocate() }
    let count = Double(n)
    for r in 0..<rows {
        let xs = v + r * n, gs = g + r * n, out = dx + r * n
        var sum = 0.0
        for j in 0..<n { sum += Double(xs[j]) }
        let mean = sum / count
        var squares = 0.0
        for j in 0..<n { let d = Double(xs[j]) - mean; squares += d * d }
        let invStd = T(1 / (squares / count + epsilon).squareRoot()), m = T(mean)
        // Means of g·scale and of g·scale·xhat; the scale and bias gradients sum over rows.
        var sumG = 0.0, sumGX = 0.0
        for j in 0..<n {
            let h = (xs[j] - m) * invStd
            xhat[j] = h
            let gw = gs[j] * w[j]
            sumG += Double(gw)
            sumGX += Double(gw * h)
            dw[j] += gs[j] * h
            db[j] += gs[j]
        }
        let meanG = T(sumG / count), meanGX = T(sumGX / count)
        for j in 0..<n { out[j] = invStd * (gs[j] * w[j] - meanG - xhat[j] * meanGX) }
    }
}
