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

/// erfc(x) with relative error below about 1.2e-7 everywhere (Numerical Recipes' Chebyshev
/// fit), built on `fastExp`.
@inlinable @inline(__always)
public func fastErfc(_ x: Float) -> Float {
    let z = abs(x)
    let t = 1 / (1 + 0.5 * z)
    var p: Float = 0.17087277
    p = p * t - 0.82215223
    p = p * t + 1.48851587
    p = p * t - 1.13520398
    p = p * t + 0.27886807
    p = p * t - 0.18628806
    p = p * t + 0.09678418
    p = p * t + 0.37409196
    p = p * t + 1.00002368
    p = p * t - 1.26551223
    let r = t * fastExp(-z * z + p)
    return x >= 0 ? r : 2 - r
}

/// True when the running CPU has AVX2 (the C kernels may run).
let cpuHasAVX2: Bool = kerf_qgemm_avx2_available() != 0

/// True when the running CPU has AVX-512F (the sixteen-lane C kernels may run).
let cpuHasAVX512: Bool = kerf_avx512_available() != 0

/// y[i] = GELU(x[i]) = x/2 * (1 + erf(x / sqrt 2)) = x/2 * erfc(-x / sqrt 2), exact form
/// (ONNX Gelu with approximate = "none"); x and y may alias.
public func gelu(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int) {
    if cpuHasAVX512 {  // the same steps in sixteen lanes, multiply-adds fused (KerfCKernels/gelu_avx512.c)
        kerf_gelu_avx512(x, y, count)
        return
    }
    if cpuHasAVX2 {  // the same operations in eight lanes (KerfCKernels/gelu_avx2.c)
        kerf_gelu_avx2(x, y, count)
        return
    }
    for i in 0..<count {
        let v = x[i]
        y[i] = 0.5 * v * fastErfc(-v * 0.70710678118654752)
    }
}
