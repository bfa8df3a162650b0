import KerfCKernels

/// exp(x) in float32 without libm: x = n ln2 + r, |r| <= ln2/2, exp(r) by a degree-6
/// polynomial (Cephes expf coefficients), times 2^n written into the exponent bits. Relative
/// error about 2 ulp for x in [-87.3, 88.3]; below it returns 0, above it +infinity; NaN stays
/// NaN. Branch-free (selects only, no integer conversion), so loops over it vectorize.
@inlinable @inline(__always)
public func fastExp(_ x: Float) -> Float {
    let lo: Float = -87.33, hi: Float = 88.3
    let c = x < lo ? lo : (x > hi ? hi : x)
    // Adding 1.5 * 2^23 rounds c * log2(e) to an integer held in the low mantissa bits.
    let shifted = c * 1.44269504 + 12582912
    let n = shifted - 12582912
    let r = c - n * 0.693359375 + n * 2.12194440e-4
    var p: Float = 1.9875691500e-4
    p = p * r + 1.3981999507e-3
    p = p * r + 8.3334519073e-3
    p = p * r + 4.1665795894e-2
    p = p * r + 1.6666665459e-1
    p = p * r + 5.0000001201e-1
    p = p * r * r + r + 1
    let scale = Float(bitPattern: (shifted.bitPattern &- 0x4B40_0000 &+ 127) << 23)
    var result = p * scale
    result = x < lo ? 0 : result
    result = x > hi ? .infinity : result
    return x != x ? x : result
}

/// erf(x) in float32: x clamped to [-4, 4] (beyond it erf rounds to +-1), then x P(x^2) / Q(x^2)
/// with the rational fit XLA and Eigen use (degrees 13 and 8). Error below 5e-7, absolute, and
/// relative for |x| >= 1e-37, where x P(x^2) is not subnormal (the fit itself is within 6.5e-8). NaN stays NaN. Branch-free, so loops vectorize.
@inlinable @inline(__always)
public func fastErf(_ x: Float) -> Float {
    let c = x > 4 ? 4 : (x < -4 ? -4 : x)
    let z = c * c
    var p: Float = -2.72614225801306e-10
    p = p * z + 2.77068142495902e-08
    p = p * z - 2.10102402082508e-06
    p = p * z - 5.69250639462346e-05
    p = p * z - 7.34990630326855e-04
    p = p * z - 2.95459980854025e-03
    p = p * z - 1.60960333262415e-02
    var q: Float = -1.45660718464996e-05
    q = q * z - 2.13374055278905e-04
    q = q * z - 1.68282697438203e-03
    q = q * z - 7.37332916720468e-03
    q = q * z - 1.42647390514189e-02
    return p * c / q
}

/// y[i] = erf(x[i]) by `fastErf` (eight or sixteen lanes where the CPU has them); x and y may alias.
public func erf(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int) {
    mapLanes(x, y, count, avx512: kerf_erf_avx512, avx2: kerf_erf_avx2) { fastErf($0) }
}

/// y[i] = f(x[i]) for i < count by the sixteen-lane kernel (KerfCKernels/erf_avx512.c) or the
/// eight-lane one (erf_avx2.c) where the CPU has them, else by `scalar`.
@inline(__always)
private func mapLanes(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ count: Int,
                      avx512: (UnsafePointer<Float>?, UnsafeMutablePointer<Float>?, Int) -> Void,
                      avx2: (UnsafePointer<Float>?, UnsafeMutablePointer<Float>?, Int) -> Void, scalar: (Float) -> Float) {
    if cpuHasAVX512 {
        avx512(x, y, count)
    } else if cpuHasAVX2 {
        avx2(x, y, count)
    } else {
        for i in 0..<count { y[i] = scalar(x[i]) }
    }
}

/// y[i] = GELU(x[i]) = x/2 * (1 + erf(x / sqrt 2)), exact form (ONNX Gelu with approximate =
/// "none"), written as ONNX Runtime writes it, with `fastErf`: the error is below about
/// 2e-7 (1 + |x|), absolute. x and y may alias.
public func gelu(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int) {
    mapLanes(x, y, count, avx512: kerf_gelu_avx512, avx2: kerf_gelu_avx2) { 0.5 * $0 * (1 + fastErf($0 * 0.70710678118654752)) }
}

/// y[i] = x[i] / (1 + exp(-x[i])) (SiLU) by `fastExp`, eight or sixteen lanes where the CPU has
/// them. y may alias x.
public func silu(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int) {
    mapLanes(x, y, count, avx512: kerf_silu_avx512, avx2: kerf_silu_avx2) { silu($0) }
}

/// dX[i] = dY[i]·(Φ(x[i]) + x[i]·φ(x[i])): the derivative of exact GELU times the incoming
/// gradient, Φ by `fastErf` and φ by `fastExp` (eight or sixteen lanes where the CPU has them).
/// dX may alias dY or x.
public func geluGradient(dY: UnsafePointer<Float>, x: UnsafePointer<Float>, dX: UnsafeMutablePointer<Float>, count: Int) {
    if cpuHasAVX512 {  // KerfCKernels/erf_avx512.c
        kerf_gelu_grad_avx512(dY, x, dX, count)
    } else if cpuHasAVX2 {  // KerfCKernels/erf_avx2.c
        kerf_gelu_grad_avx2(dY, x, dX, count)
    } else {
        for i in 0..<count {
            let v = x[i]
            let cdf = 0.5 * (1 + fastErf(v * 0.70710678118654752))
            dX[i] = dY[i] * (cdf + v * (fastExp(-0.5 * v * v) * 0.3989422804014327))
        }
    }
}

/// tanh(x) as a rational function of x (Eigen's and ONNX Runtime's MLAS float form): x clamped
/// to ±7.9053 (where tanh rounds to ±1), odd degree-13 numerator over even degree-6 denominator;
/// x itself below 0.0004 in magnitude. Relative error below 4e-7 (measured against float64 tanh
/// on [-10, 10]); NaN stays NaN. Branch-free, so loops over it vectorize.
@inlinable @inline(__always)
public func fastTanh(_ x: Float) -> Float {
    let bound: Float = 7.90531110763549805
    let c = x < -bound ? -bound : (x > bound ? bound : x)
    let c2 = c * c
    var p: Float = -2.76076847742355e-16
    p = p * c2 + 2.00018790482477e-13
    p = p * c2 - 8.60467152213735e-11
    p = p * c2 + 5.12229709037114e-08
    p = p * c2 + 1.48572235717979e-05
    p = p * c2 + 6.37261928875436e-04
    p = p * c2 + 4.89352455891786e-03
    p = p * c
    var q: Float = 1.19825839466702e-06
    q = q * c2 + 1.18534705686654e-04
    q = q * c2 + 2.26843463243900e-03
    q = q * c2 + 4.89352518554385e-03
    let y = p / q
    return abs(x) < 0.0004 ? x : y
}
