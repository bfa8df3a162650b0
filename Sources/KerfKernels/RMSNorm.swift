/// Root-mean-square normalization over rows: x viewed as [rows, n]; for each row,
/// y = x / sqrt(mean(x²) + epsilon) · scale (scale: n elements). x and y may alias.
public func rmsNorm(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, rows: Int, n: Int,
                    scale: UnsafePointer<Float>, epsilon: Float) {
    for r in 0..<rows {
        let src = x + r * n, dst = y + r * n
        var a = SIMD8<Float>()
        var j = 0
        while j + 8 <= n {
            let v = UnsafeRawPointer(src + j).loadUnaligned(as: SIMD8<Float>.self)
            a = a.addingProduct(v, v)
            j += 8
        }
        var sq = a.sum()
        while j < n { sq += src[j] * src[j]; j += 1 }
        let inv = 1 / (sq / Float(max(n, 1)) + epsilon).squareRoot()
        for j in 0..<n { dst[j] = src[j] * inv * scale[j] }
    }
}

/// Double-precision `rmsNorm`.
public func rmsNorm(_ x: UnsafePointer<Double>, _ y: UnsafeMutablePointer<Double>, rows: Int, n: Int,
                    scale: UnsafePointer<Double>, epsilon: Double) {
    for r in 0..<rows {
        let src = x + r * n, dst = y + r * n
        var sq: Double = 0
        for j in 0..<n { sq += src[j] * src[j] }
        let inv = 1 / (sq / Double(max(n, 1)) + epsilon).squareRoot()
        for j in 0..<n { dst[j] = src[j] * inv * scale[j] }
    }
}
