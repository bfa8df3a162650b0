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
