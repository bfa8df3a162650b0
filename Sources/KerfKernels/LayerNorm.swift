/// Layer normalization over rows: x viewed as [rows, n]; for each row,
/// y = (x - mean) / sqrt(var + epsilon) * scale + bias (scale, bias: n elements; bias optional).
/// Writes each row's mean and 1/sqrt(var + epsilon) to `mean` / `invStdDev` when given.
public func layerNorm(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, rows: Int, n: Int,
                      scale: UnsafePointer<Float>, bias: UnsafePointer<Float>?, epsilon: Float,
                      mean: UnsafeMutablePointer<Float>?, invStdDev: UnsafeMutablePointer<Float>?) {
    let vectorEnd = n - n % 8
    for r in 0..<rows {
        let src = x + r * n, dst = y + r * n
        // Eight-lane partial sums, then the tail.
        var acc = SIMD8<Float>()
        var j = 0
        while j < vectorEnd {
            acc += UnsafeRawPointer(src + j).loadUnaligned(as: SIMD8<Float>.self)
            j += 8
        }
        var sum = acc.sum()
        while j < n { sum += src[j]; j += 1 }
        let m = n > 0 ? sum / Float(n) : 0
        let mv = SIMD8<Float>(repeating: m)
        var sqAcc = SIMD8<Float>()
        j = 0
        while j < vectorEnd {
            let d = UnsafeRawPointer(src + j).loadUnaligned(as: SIMD8<Float>.self) - mv
            sqAcc = sqAcc.addingProduct(d, d)
            j += 8
        }
        var sq = sqAcc.sum()
        while j < n { let d = src[j] - m; sq += d * d; j += 1 }
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
