import KerfCKernels
// Elementwise int8 kernels on per-tensor quantized values (uint8 or int8): what a float op
// between DequantizeLinear and QuantizeLinear computes, without leaving 8 bits. Rounding is
// half to even and results saturate to [lo, hi], as ONNX Runtime's QLinearAdd and
// QLinearGlobalAveragePool (MLAS) do.

/// y[i] = clamp(round(aRatio * (a[i] - aZero) + bRatio * (b[i] - bZero)) + yZero, lo, hi) for
/// i < count, where aRatio = a_scale / y_scale and bRatio = b_scale / y_scale. `lo`/`hi` may be
/// narrower than T's range (a fused Relu raises `lo` to yZero).
@inlinable
public func quantizedAdd<T: FixedWidthInteger>(_ a: UnsafePointer<T>, aRatio: Float, aZero: Int32,
                                               _ b: UnsafePointer<T>, bRatio: Float, bZero: Int32, count: Int,
                                               yZero: Int32, lo: Int32, hi: Int32, into y: UnsafeMutablePointer<T>) {
    if T.bitWidth == 8 && cpuHasAVX512BW {  // KerfCKernels/int8_elementwise_avx512.c, the same arithmetic
        kerf_quantized_add_avx512(a, aRatio, aZero, b, bRatio, bZero, count, yZero, lo, hi, y, T.isSigned ? 1 : 0)
        return
    }
    let low = Float(lo - yZero), high = Float(hi - yZero)
    for i in 0..<count {
        var v = aRatio * Float(Int32(truncatingIfNeeded: a[i]) &- aZero) + bRatio * Float(Int32(truncatingIfNeeded: b[i]) &- bZero)
        v = v > low ? v : low
        v = v < high ? v : high
        y[i] = T(truncatingIfNeeded: Int32(v.rounded(.toNearestOrEven)) + yZero)
    }
}

/// y[p] = clamp(round((Σ_i x[p * planeSize + i] - planeSize * xZero) * multiplier) + yZero, lo, hi)
/// for p < planes: the mean of each plane requantized, with multiplier = x_scale / (y_scale *
/// planeSize) (the sum is exact in int32 for planeSize < 2^23).
@inlinable
public func quantizedPlaneMeans<T: FixedWidthInteger>(_ x: UnsafePointer<T>, planes: Int, planeSize: Int, xZero: Int32,
                                                      multiplier: Float, yZero: Int32, lo: Int32, hi: Int32,
                                                      into y: UnsafeMutablePointer<T>) {
    let low = Float(lo - yZero), high = Float(hi - yZero), offset = Int32(planeSize) &* xZero
    for p in 0..<planes {
        let plane = x + p * planeSize
        var sum: Int32 = 0
        for i in 0..<planeSize { sum &+= Int32(truncatingIfNeeded: plane[i]) }
        var v = Float(sum &- offset) * multiplier
        v = v > low ? v : low
        v = v < high ? v : high
        y[p] = T(truncatingIfNeeded: Int32(v.rounded(.toNearestOrEven)) + yZero)
    }
}

/// y[i] = table[x[i]] for i < count: a 256-entry table of what a chain of per-tensor operators
/// gives each byte (64 bytes at a time with AVX-512 VBMI's two-table permutes).
public func lookUpBytes(_ x: UnsafePointer<UInt8>, count: Int, table: UnsafePointer<UInt8>, into y: UnsafeMutablePointer<UInt8>) {
    if cpuHasAVX512VBMI {  // KerfCKernels/int8_elementwise_avx512.c
        kerf_byte_table_avx512vbmi(x, count, table, y)
        return
    }
    for i in 0..<count { y[i] = table[Int(x[i])] }
}

/// y[p, c] = tables[c * 256 + x[p, c]] for p < pixels, c < channels: one table per channel of
/// channels-last bytes.
public func lookUpChannelBytes(_ x: UnsafePointer<UInt8>, pixels: Int, channels: Int, tables: UnsafePointer<UInt8>,
                               into y: UnsafeMutablePointer<UInt8>) {
    for p in 0..<pixels {
        let base = p * channels
        for c in 0..<channels { y[base + c] = tables[c &* 256 &+ Int(x[base + c])] }
    }
}
