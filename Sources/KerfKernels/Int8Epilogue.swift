import KerfCKernels
// What follows an int8 GEMM: int32 sums [m, n] (row stride `ldAcc`) turned into the op's
// output. Output element (i, j) goes to y[i * rowStride + j * columnStride], so a Conv computed
// as [pixels, channels] writes NCHW directly (rowStride 1, columnStride pixels).
// `scales` / `multipliers` and `bias` hold 1 entry (all columns) or n (one per column).

/// y(i, j) = Float(acc[i, j] &+ offsets[j]) * scales[j] + bias[j] (offsets [n] and bias
/// optional), a multiply then an add.
public func dequantizeProduct(_ acc: UnsafePointer<Int32>, m: Int, n: Int, ldAcc: Int, offsets: UnsafePointer<Int32>? = nil,
                              scales: UnsafeBufferPointer<Float>, bias: UnsafeBufferPointer<Float>?,
                              into y: UnsafeMutablePointer<Float>, rowStride: Int, columnStride: Int) {
    let perColumnScale = scales.count > 1, perColumnBias = (bias?.count ?? 0) > 1
    if columnStride == 1 && cpuHasAVX512 && (perColumnScale || n == 1) && (bias == nil || perColumnBias || n == 1) {
        // KerfCKernels/dequantize_product_avx512.c, the same operations
        kerf_dequantize_rows_avx512(acc, m, n, ldAcc, offsets, scales.baseAddress, bias?.baseAddress, y, rowStride)
        return
    }
    if columnStride == 1 && cpuHasAVX2 {  // KerfCKernels/requantize_avx2.c, the same operations
        kerf_dequantize_rows_avx2(acc, m, n, ldAcc, offsets, scales.baseAddress, perColumnScale ? 1 : 0,
                                  bias?.baseAddress, perColumnBias ? 1 : 0, y, rowStride)
        return
    }
    for i in 0..<m {
        let row = acc + i * ldAcc, out = y + i * rowStride
        for j in 0..<n {
            var v = Float(row[j] &+ (offsets?[j] ?? 0)) * scales[perColumnScale ? j : 0]
            if let bias { v += bias[perColumnBias ? j : 0] }
            out[j * columnStride] = v
        }
    }
}

/// y(i, j) = clamp(round(Float(acc[i, j] + bias[j]) * multipliers[j]) + zeroPoint, lo, hi),
/// rounding half to even, as ONNX Runtime's MLAS requantization does (float multiply, clamp
/// to [lo - zeroPoint, hi - zeroPoint], round, add the zero point). `lo`/`hi` may be narrower
/// than T's range (a fused Relu or Clip).
@inlinable
public func requantizeProduct<T: FixedWidthInteger>(_ acc: UnsafePointer<Int32>, m: Int, n: Int, ldAcc: Int,
                                                    bias: UnsafeBufferPointer<Int32>?, multipliers: UnsafeBufferPointer<Float>,
                                                    zeroPoint: Int32, lo: Int32, hi: Int32,
                                                    into y: UnsafeMutablePointer<T>, rowStride: Int, columnStride: Int) {
    let perColumn = multipliers.count > 1, perColumnBias = (bias?.count ?? 0) > 1
    let low = Float(lo - zeroPoint), high = Float(hi - zeroPoint)
    if rowStride == 1 && columnStride != 1 && T.bitWidth == 8
        && requantizeTransposedBytes(acc, m: m, n: n, ldAcc: ldAcc, bias: bias, multipliers: multipliers, zeroPoint: zeroPoint,
                                     lo: lo, hi: hi, into: UnsafeMutableRawPointer(y), columnStride: columnStride,
                                     signed: T.isSigned) {
        return
    }
    if columnStride == 1 && T.bitWidth == 8 && cpuHasAVX512 && (multipliers.count == n || n == 1)
        && (bias == nil || bias!.count == n) {
        // KerfCKernels/int8_elementwise_avx512.c, the same arithmetic
        kerf_requantize_rows_avx512(acc, m, n, ldAcc, bias?.baseAddress, multipliers.baseAddress, zeroPoint, lo, hi,
                                    UnsafeMutableRawPointer(y), rowStride)
        return
    }
    if columnStride == 1 && T.bitWidth == 8
        && requantizeRowBytes(acc, m: m, n: n, ldAcc: ldAcc, bias: bias, multipliers: multipliers, zeroPoint: zeroPoint,
                              lo: lo, hi: hi, into: UnsafeMutableRawPointer(y), rowStride: rowStride, signed: T.isSigned) {
        return
    }
    if rowStride == 1 && columnStride != 1 {
        // Channel-major output (a Conv writing NCHW): per block of rows, one column of acc is
        // gathered first so that the arithmetic runs over contiguous values.
        withUnsafeTemporaryAllocation(of: Int32.self, capacity: 64) { column in
            var i0 = 0
            while i0 < m {
                let rows = min(64, m - i0)
                for j in 0..<n {
                    let b = bias.map { $0[perColumnBias ? j : 0] } ?? 0, scale = multipliers[perColumn ? j : 0]
                    for r in 0..<rows { column[r] = acc[(i0 + r) * ldAcc + j] &+ b }
                    let out = y + j * columnStride + i0
                    for r in 0..<rows {
                        var v = Float(column[r]) * scale
                        v = v > low ? v : low
                        v = v < high ? v : high
                        out[r] = T(truncatingIfNeeded: Int32(v.rounded(.toNearestOrEven)) + zeroPoint)
                    }
                }
                i0 += rows
            }
        }
        return
    }
    for i in 0..<m {
        let row = acc + i * ldAcc, out = y + i * rowStride
        for j in 0..<n {
            var s = row[j]
            if let bias { s &+= bias[perColumnBias ? j : 0] }
            var v = Float(s) * multipliers[perColumn ? j : 0]
            v = v > low ? v : low
            v = v < high ? v : high
            out[j * columnStride] = T(truncatingIfNeeded: Int32(v.rounded(.toNearestOrEven)) + zeroPoint)
        }
    }
}

/// requantizeProduct's row-major case (columnStride 1) for byte outputs, in eight AVX2 lanes
/// (KerfCKernels/requantize_avx2.c, the same arithmetic). False when the CPU lacks AVX2.
@usableFromInline
func requantizeRowBytes(_ acc: UnsafePointer<Int32>, m: Int, n: Int, ldAcc: Int, bias: UnsafeBufferPointer<Int32>?,
                        multipliers: UnsafeBufferPointer<Float>, zeroPoint: Int32, lo: Int32, hi: Int32,
                        into y: UnsafeMutableRawPointer, rowStride: Int, signed: Bool) -> Bool {
    guard cpuHasAVX2 else { return false }
    kerf_requantize_rows_avx2(acc, m, n, ldAcc, bias?.baseAddress, (bias?.count ?? 0) > 1 ? 1 : 0,
                              multipliers.baseAddress, multipliers.count > 1 ? 1 : 0, zeroPoint, lo, hi,
                              y, rowStride, signed ? 1 : 0)
    return true
}

/// requantizeProduct's channel-major case (rowStride 1) for byte outputs, in eight AVX2 lanes
/// (KerfCKernels/requantize_avx2.c, the same arithmetic). False when the CPU lacks AVX2.
@usableFromInline
func requantizeTransposedBytes(_ acc: UnsafePointer<Int32>, m: Int, n: Int, ldAcc: Int, bias: UnsafeBufferPointer<Int32>?,
                               multipliers: UnsafeBufferPointer<Float>, zeroPoint: Int32, lo: Int32, hi: Int32,
                               into y: UnsafeMutableRawPointer, columnStride: Int, signed: Bool) -> Bool {
    guard cpuHasAVX2 else { return false }
    kerf_requantize_transposed_avx2(acc, m, n, ldAcc, bias?.baseAddress, (bias?.count ?? 0) > 1 ? 1 : 0,
                                    multipliers.baseAddress, multipliers.count > 1 ? 1 : 0, zeroPoint, lo, hi,
                                    y, columnStride, signed ? 1 : 0)
    return true
}
