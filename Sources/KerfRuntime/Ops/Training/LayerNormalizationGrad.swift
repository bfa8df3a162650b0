import KerfCore
import KerfKernels

/// The gradients of LayerNormalization Y = (X − mean)·invStd·scale + bias, normalized over the
/// axes from `axis` on: [dX (X's shape), dScale, dBias (scale's shape)]. The statistics are
/// recomputed from X (population variance, `epsilon` inside the square root).
func layerNormalizationGradient(dY: Tensor, x: Tensor, scale: Tensor, axis rawAxis: Int, epsilon: Double,
                                threads: Int = 1) throws -> [Tensor] {
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
    case .double: layerNormBackward(dY, x, scale, dX, dScale, dBias, rows: rows, n: n, epsilon: epsilon, threads: threads, Double.self)
    default: layerNormBackward(dY, x, scale, dX, dScale, dBias, rows: rows, n: n, epsilon: Float(epsilon), threads: threads)
    }
    return [dX, dScale, dBias]
}

/// Float: KerfKernels' `layerNormBackward` on one block of rows per thread, each thread with its
/// own dScale and dBias, summed after in block order.
private func layerNormBackward(_ dY: Tensor, _ x: Tensor, _ scale: Tensor, _ dX: Tensor, _ dScale: Tensor, _ dBias: Tensor,
                               rows: Int, n: Int, epsilon: Float, threads: Int) {
    guard n > 0, rows > 0 else { return }
    let g = UnsafePointer(dY.storage.pointer.assumingMemoryBound(to: Float.self))
    let v = UnsafePointer(x.storage.pointer.assumingMemoryBound(to: Float.self))
    let w = UnsafePointer(scale.storage.pointer.assumingMemoryBound(to: Float.self))
    let dx = dX.storage.pointer.assumingMemoryBound(to: Float.self)
    let dw = dScale.storage.pointer.assumingMemoryBound(to: Float.self), db = dBias.storage.pointer.assumingMemoryBound(to: Float.self)
    let blocks = max(1, min(threads, rows * n / (1 << 14)))
    // Block b's partial sums: dScale at partial[2·b·n], dBias at partial[(2·b + 1)·n].
    let partial = UnsafeMutablePointer<Float>.allocate(capacity: 2 * blocks * n)
    partial.initialize(repeating: 0, count: 2 * blocks * n)
    defer { partial.deallocate() }
    parallelRanges(blocks, threads: threads, grain: 1) { range in
        for b in range {
            layerNormBackward(dY: g, x: v, scale: w, rows: (b * rows / blocks)..<((b + 1) * rows / blocks), n: n, epsilon: epsilon,
                              dX: dx, dScale: partial + 2 * b * n, dBias: partial + (2 * b + 1) * n)
        }
    }
    for b in 0..<blocks {
        for j in 0..<n {
            dw[j] += partial[2 * b * n + j]
            db[j] += partial[(2 * b + 1) * n + j]
        }
    }
}

/// Double: sums in double.
private func layerNormBackward<T: GradientElement>(_ dY: Tensor, _ x: Tensor, _ scale: Tensor, _ dX: Tensor, _ dScale: Tensor,
                                                   _ dBias: Tensor, rows: Int, n: Int, epsilon: Double, threads: Int, _: T.Type) {
    let g = dY.storage.pointer.assumingMemoryBound(to: T.self)
    let v = x.storage.pointer.assumingMemoryBound(to: T.self)
    let w = scale.storage.pointer.assumingMemoryBound(to: T.self)
    let dx = dX.storage.pointer.assumingMemoryBound(to: T.self)
    let dw = dScale.storage.pointer.assumingMemoryBound(to: T.self)
    let db = dBias.storage.pointer.assumingMemoryBound(to: T.self)
    guard n > 0, rows > 0 else { return }
    // Each row's mean and 1/std, kept for the second pass.
    let means = UnsafeMutablePointer<T>.allocate(capacity: rows), invStds = UnsafeMutablePointer<T>.allocate(capacity: rows)
    defer {
        means.deallocate()
        invStds.deallocate()
    }
    let count = Double(n)
    // Pass 1, by rows: the statistics and dX = invStd·(g·scale − mean(g·scale) − xhat·mean(g·scale·xhat)).
    parallelRanges(rows, threads: threads, grain: max(1, (1 << 13) / n)) { rowRange in
        for r in rowRange {
            let xs = v + r * n, gs = g + r * n, out = dx + r * n
            var sum = 0.0
            for j in 0..<n { sum += Double(xs[j]) }
            let mean = sum / count
            var squares = 0.0
            for j in 0..<n { let d = Double(xs[j]) - mean; squares += d * d }
            let invStd = T(1 / (squares / count + epsilon).squareRoot()), m = T(mean)
            means[r] = m
            invStds[r] = invStd
            var sumG = 0.0, sumGX = 0.0
            for j in 0..<n {
                let gw = gs[j] * w[j]
                sumG += Double(gw)
                sumGX += Double(gw * ((xs[j] - m) * invStd))
            }
            let meanG = T(sumG / count), meanGX = T(sumGX / count)
            for j in 0..<n { out[j] = invStd * (gs[j] * w[j] - meanG - (xs[j] - m) * invStd * meanGX) }
        }
    }
    // Pass 2, by blocks of columns: dScale = Σ_rows g·xhat, dBias = Σ_rows g.
    let block = 64
    parallelRanges((n + block - 1) / block, threads: threads, grain: 1) { blocks in
        for b in blocks {
            let columns = (b * block)..<min(n, (b + 1) * block)
            for r in 0..<rows {
                let xs = v + r * n, gs = g + r * n, m = means[r], invStd = invStds[r]
                for j in columns {
                    dw[j] += gs[j] * ((xs[j] - m) * invStd)
                    db[j] += gs[j]
                }
            }
        }
    }
}
