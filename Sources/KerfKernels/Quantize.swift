import KerfCKernels
// Linear (de)quantization of contiguous runs sharing one scale and zero point, and the
// per-tensor parameters DynamicQuantizeLinear derives. Rounding is half to even, as the ONNX
// spec and ONNX Runtime's MLAS (x / scale, then round) do.

/// y[i] = clamp(round(x[i] / scale) + zeroPoint, lo, hi) for i < count; NaN gives `lo` (as
/// MLAS's max/min instructions do). `lo`/`hi` are the target type's range (narrower for the
/// 4- and 2-bit types stored in a byte).
@inlinable
public func quantize<T: FixedWidthInteger>(_ x: UnsafePointer<Float>, count: Int, scale: Float, zeroPoint: Int32,
                                           lo: Int32, hi: Int32, into y: UnsafeMutablePointer<T>) {
    if T.bitWidth == 8 && quantizeBytes(x, count: count, scale: scale, zeroPoint: zeroPoint, lo: lo, hi: hi,
                                        into: UnsafeMutableRawPointer(y), signed: T.isSigned) {
        return
    }
    let z = Float(zeroPoint), low = Float(lo) - z, high = Float(hi) - z
    for i in 0..<count {
        var v = x[i] / scale
        v = v > low ? v : low
        v = v < high ? v : high
        y[i] = T(truncatingIfNeeded: Int32(v.rounded(.toNearestOrEven)) + zeroPoint)
    }
}

/// `quantize` to bytes in sixteen AVX-512 lanes (KerfCKernels/quantize_avx512.c, the divide
/// replaced by a correctly rounded multiply) or eight AVX2 lanes (KerfCKernels/requantize_avx2.c,
/// the same operations). False when the CPU lacks AVX2.
@usableFromInline
func quantizeBytes(_ x: UnsafePointer<Float>, count: Int, scale: Float, zeroPoint: Int32, lo: Int32, hi: Int32,
                   into y: UnsafeMutableRawPointer, signed: Bool) -> Bool {
    if cpuHasAVX512 && scale.isNormal && (1 / scale).isNormal {
        kerf_quantize_bytes_avx512(x, count, scale, zeroPoint, lo, hi, y)
        return true
    }
    guard cpuHasAVX2 else { return false }
    kerf_quantize_bytes_avx2(x, count, scale, zeroPoint, lo, hi, y, signed ? 1 : 0)
    return true
}

/// y[i] = Float(x[i] - zeroPoint) * scale for i < count (bytes in sixteen AVX-512 lanes where
/// the CPU has them, KerfCKernels/quantize_avx512.c, the same operations).
@inlinable
public func dequantize<T: FixedWidthInteger>(_ x: UnsafePointer<T>, count: Int, scale: Float, zeroPoint: Int32,
                                             into y: UnsafeMutablePointer<Float>) {
    if T.bitWidth == 8 && dequantizeBytes(UnsafeRawPointer(x), count: count, scale: scale, zeroPoint: zeroPoint, into: y,
                                          signed: T.isSigned) {
        return
    }
    for i in 0..<count { y[i] = Float(Int32(truncatingIfNeeded: x[i]) &- zeroPoint) * scale }
}

/// `dequantize` of bytes in sixteen AVX-512 lanes; false when the CPU lacks AVX-512.
@usableFromInline
func dequantizeBytes(_ x: UnsafeRawPointer, count: Int, scale: Float, zeroPoint: Int32, into y: UnsafeMutablePointer<Float>,
                     signed: Bool) -> Bool {
    guard cpuHasAVX512 else { return false }
    kerf_dequantize_bytes_avx512(x, count, scale, zeroPoint, signed ? 1 : 0, y)
    return true
}

/// DynamicQuantizeLinear's uint8 parameters for x[0..<count]: the range [min, max] widened to
/// include 0, scale = (max - min) / 255 (1 when the range is empty), zero point =
/// round(clamp(-min / scale, 0, 255)) — the same float operations as ONNX Runtime.
public func dynamicQuantizationParameters(_ x: UnsafePointer<Float>, count: Int) -> (scale: Float, zeroPoint: UInt8) {
    let range = valueRange(x, count: count)
    return dynamicQuantizationParameters(low: range.low, high: range.high)
}

/// The parameters from a range `valueRange` gave (of the whole tensor, or the lowest low and
/// highest high of its parts).
public func dynamicQuantizationParameters(low lo: Float, high hi: Float) -> (scale: Float, zeroPoint: UInt8) {
    let scale: Float = hi == lo ? 1 : (hi - lo) / 255
    let initial = 0 - lo / scale
    let clamped = Swift.max(0, Swift.min(255, initial))
    return (scale, UInt8(clamped.rounded(.toNearestOrEven)))
}

/// min(0, x[i]...) and max(0, x[i]...) over i < count, NaN ignored.
public func valueRange(_ x: UnsafePointer<Float>, count: Int) -> (low: Float, high: Float) {
    if cpuHasAVX512 {  // KerfCKernels/quantize_avx512.c
        var low: Float = 0, high: Float = 0
        kerf_value_range_avx512(x, count, &low, &high)
        return (low, high)
    }
    // Eight lanes (NaN ignored, as by the scalar comparisons), then the tail.
    var lows = SIMD8<Float>(), highs = SIMD8<Float>()
    var i = 0
    while i + 8 <= count {
        let v = UnsafeRawPointer(x + i).loadUnaligned(as: SIMD8<Float>.self)
        lows = lows.replacing(with: v, where: v .< lows)
        highs = highs.replacing(with: v, where: v .> highs)
        i += 8
    }
    var lo = lows.min(), hi = highs.max()
    while i < count {
        let v = x[i]
        lo = v < lo ? v : lo
        hi = v > hi ? v : hi
        i += 1
    }
    return (lo, hi)
}
