/// Layer normalization over rows: x viewed as [rows, n]; for each row,
/// y = (x - mean) / sqrt(var + epsilon) * scale + bias (scale, bias: n elements; bias optional).
/// Writes each row's mean and 1/sqrt(var + epsilon) to `mean` / `invStdDev` when given.
public func layerNorm(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, rows: Int, n: Int,
                      scale: UnsafePointer<Float>, bias: UnsafePointer<Float>?, epsilon: Float,
                      mean: UnsafeMutablePointer<Float>?, invStdDev: UnsafeMutablePointer<Float>?) {
    for r in 0..<rows {
        let src = x + r * n, dst = y + r * n
        let m = n > 0 ? rowSum(src, count: n) / Float(n) : 0
        let sq = rowSquaredDeviations(src, n: n, mean: m)
        let variance = n > 0 ? sq / Float(n) : 0
        let inv = 1 / (variance + epsilon).squareRoot()
        if let bias {
            for j in 0..<n { dst[j] = (src[j] - m) * inv * scale[j] + bias[j] }
        } else {
            for j in 0..<n { dst[j] = (src[j] - m) * inv * scale[j] }
        }
        mean?[r] = m
        invStdDev?[r] = inv
    }
}

/// Sum of (x[j] - mean)^2 over j < n, accumulated as `rowSum` does (four chains).
@inline(__always)
private func rowSquaredDeviations(_ x: UnsafePointer<Float>, n: Int, mean: Float) -> Float {
    let mv = SIMD8<Float>(repeating: mean)
    var a0 = SIMD8<Float>(), a1 = a0, a2 = a0, a3 = a0
    var j = 0
    while j + 32 <= n {
        let p = UnsafeRawPointer(x + j)
        let d0 = p.loadUnaligned(as: SIMD8<Float>.self) - mv, d1 = p.loadUnaligned(fromByteOffset: 32, as: SIMD8<Float>.self) - mv
        let d2 = p.loadUnaligned(fromByteOffset: 64, as: SIMD8<Float>.self) - mv, d3 = p.loadUnaligned(fromByteOffset: 96, as: SIMD8<Float>.self) - mv
        a0 = a0.addingProduct(d0, d0)
        a1 = a1.addingProduct(d1, d1)
        a2 = a2.addingProduct(d2, d2)
        a3 = a3.addingProduct(d3, d3)
        j += 32
    }
    while j + 8 <= n {
        let d = UnsafeRawPointer(x + j).loadUnaligned(as: SIMD8<Float>.self) - mv
        a0 = a0.addingProduct(d, d)
        j += 8
    }
    var sq = ((a0 + a1) + (a2 + a3)).sum()
    while j < n { let d = x[j] - mean; sq += d * d; j += 1 }
    return sq
}

/// Double-precision `layerNorm`.
public func layerNorm(_ x: UnsafePointer<Double>, _ y: UnsafeMutablePointer<Double>, rows: Int, n: Int,
                      scale: UnsafePointer<Double>, bias: UnsafePointer<Double>?, epsilon: Double,
                      mean: UnsafeMutablePointer<Double>?, invStdDev: UnsafeMutablePointer<Double>?) {
    for r in 0..<rows {
        let src = x + r * n, dst = y + r * n
        var sum: Double = 0
        for j in 0..<n { sum += src[j] }
        let m = n > 0 ? sum / Double(n) : 0
        var sq: Double = 0
        for j in 0..<n { let d = src[j] - m; sq += d * d }
        let variance = n > 0 ? sq / Double(n) : 0
        let inv = 1 / (variance + epsilon).squareRoot()
        if let bias {
            for j in 0..<n { dst[j] = (src[j] - m) * inv * scale[j] + bias[j] }
        } else {
            for j in 0..<n { dst[j] = (src[j] - m) * inv * scale[j] }
        }
        mean?[r] = m
        invStdDev?[r] = inv
    }
}

/// The gradients of `layerNorm` for the rows `rows` of x, dY and dX (each viewed as [·, n]):
/// dX = invStd·(dY·scale − mean(dY·scale) − x̂·mean(dY·scale·x̂)), x̂ = (x − mean)·invStd, the
/// statistics recomputed from x (population variance, `epsilon` inside the square root); and
/// adds these rows' Σ dY·x̂ to dScale[n] and Σ dY to dBias[n] (threads taking disjoint rows
/// give each its own dScale and dBias, summed after). Float sums in eight-lane chains.
public func layerNormBackward(dY g: UnsafePointer<Float>, x: UnsafePointer<Float>, scale w: UnsafePointer<Float>,
                              rows: Range<Int>, n: Int, epsilon: Float, dX: UnsafeMutablePointer<Float>,
                              dScale: UnsafeMutablePointer<Float>, dBias: UnsafeMutablePointer<Float>) {
    guard n > 0 else { return }
    let count = Float(n)
    for r in rows {
        let xs = x + r * n, gs = g + r * n, out = dX + r * n
        let m = rowSum(xs, count: n) / count
        let inv = 1 / (rowSquaredDeviations(xs, n: n, mean: m) / count + epsilon).squareRoot()
        // Σ g·w and Σ g·w·(x − m).
        let mv = SIMD8<Float>(repeating: m)
        var s0 = SIMD8<Float>(), s1 = s0, t0 = s0, t1 = s0
        var j = 0
        while j + 16 <= n {
            let p = UnsafeRawPointer(gs + j), q = UnsafeRawPointer(w + j), u = UnsafeRawPointer(xs + j)
            let gw0 = p.loadUnaligned(as: SIMD8<Float>.self) * q.loadUnaligned(as: SIMD8<Float>.self)
            let gw1 = p.loadUnaligned(fromByteOffset: 32, as: SIMD8<Float>.self) * q.loadUnaligned(fromByteOffset: 32, as: SIMD8<Float>.self)
            s0 += gw0
            s1 += gw1
            t0 = t0.addingProduct(gw0, u.loadUnaligned(as: SIMD8<Float>.self) - mv)
            t1 = t1.addingProduct(gw1, u.loadUnaligned(fromByteOffset: 32, as: SIMD8<Float>.self) - mv)
            j += 16
        }
        var sumG = (s0 + s1).sum(), sumGD = (t0 + t1).sum()
        while j < n {
            let gw = gs[j] * w[j]
            sumG += gw
            sumGD += gw * (xs[j] - m)
            j += 1
        }
        let meanG = sumG / count, k = inv * (sumGD * inv / count)
        // Loops the compiler vectorizes.
        for j in 0..<n {
            let xhat = (xs[j] - m) * inv
            out[j] = inv * (gs[j] * w[j] - meanG) - (xs[j] - m) * inv * k
            dScale[j] += gs[j] * xhat
            dBias[j] += gs[j]
        }
    }
}
