// Fake quantization (quantize, then dequantize, in float) and its straight-through gradient:
// what quantization-aware training runs in place of a QuantizeLinear -> DequantizeLinear pair.

/// y[i] = (clamp(round(x[i] / scale) + zeroPoint, qmin, qmax) − zeroPoint)·scale, rounding half
/// to even: exactly what ONNX's QuantizeLinear followed by DequantizeLinear computes.
public func fakeQuantize(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int,
                         scale: Float, zeroPoint: Int, qmin: Int, qmax: Int) {
    let zp = Float(zeroPoint), lo = Float(qmin), hi = Float(qmax)
    teamRanges(count, grain: 1 << 15) { range in
        for i in range {
            let q = min(max((x[i] / scale).rounded(.toNearestOrEven) + zp, lo), hi)
            y[i] = (q - zp) * scale
        }
    }
}

/// The clipped straight-through estimator of `fakeQuantize`: dx[i] = dy[i] where
/// round(x[i] / scale) + zeroPoint lies in [qmin, qmax], else 0 (PyTorch's
/// `fake_quantize_per_tensor_affine` backward).
public func fakeQuantizeGradient(_ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>, count: Int,
                                 scale: Float, zeroPoint: Int, qmin: Int, qmax: Int) {
    let zp = Float(zeroPoint), lo = Float(qmin), hi = Float(qmax)
    teamRanges(count, grain: 1 << 15) { range in
        for i in range {
            let q = (x[i] / scale).rounded(.toNearestOrEven) + zp
            dx[i] = q >= lo && q <= hi ? dy[i] : 0
        }
    }
}

/// Symmetric fake quantization of a weight laid out [outer, channels, inner] with one scale per
/// channel: y = clamp(round(w / scale[c]), −127, 127)·scale[c] (int8 with zero point 0).
public func fakeQuantizeSymmetric(_ w: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, outer: Int, channels: Int, inner: Int,
                                  scales: UnsafePointer<Float>) {
    for o in 0..<outer {
        for c in 0..<channels {
            let base = (o * channels + c) * inner, s = scales[c]
            for j in base..<(base + inner) { y[j] = min(max((w[j] / s).rounded(.toNearestOrEven), -127), 127) * s }
        }
    }
}

/// The smallest and largest of `count` floats (0, 0 when empty). NaN elements are skipped.
public func minimumAndMaximum(_ x: UnsafePointer<Float>, count: Int) -> (min: Float, max: Float) {
    guard count > 0 else { return (0, 0) }
    var lo = Float.infinity, hi = -Float.infinity
    for i in 0..<count {
        lo = min(lo, x[i])
        hi = max(hi, x[i])
    }
    return lo <= hi ? (lo, hi) : (0, 0)
}
