import KerfCKernels
#if canImport(Glibc)
import Glibc
#endif

/// Max pooling of one image plane x[inputSize...] into y[outputSize...]. When `indices` is
/// given it receives, per output, the flat index (within the plane) of the chosen input
/// element; -1 marks a window that lies entirely in padding (y is then -infinity / min).
@inlinable
public func maxPoolPlane<T: Comparable>(_ x: UnsafePointer<T>, _ y: UnsafeMutablePointer<T>, geometry g: WindowGeometry,
                                        lowest: T, indices: UnsafeMutablePointer<Int>?) {
    var best = lowest
    var bestIndex = -1
    var current = -1
    g.forEachTap { o, k, i in
        if o != current {
            if current >= 0 { y[current] = best; indices?[current] = bestIndex }
            current = o
            best = lowest
            bestIndex = -1
        }
        if i >= 0 {
            let v = x[i]
            if bestIndex < 0 || v > best { best = v; bestIndex = i }
        }
        _ = k
    }
    if current >= 0 { y[current] = best; indices?[current] = bestIndex }
}

/// Lp pooling of one plane: y[o] = (Σ |x[i]|^p)^(1/p) over the taps of window o inside the
/// plane (padding counts as 0), summed in double; p >= 1.
@inlinable
public func lpPoolPlane<T: BinaryFloatingPoint>(_ x: UnsafePointer<T>, _ y: UnsafeMutablePointer<T>, geometry g: WindowGeometry, p: Int) {
    var sum = 0.0
    var current = -1
    let root = 1 / Double(p)
    g.forEachTap { o, _, i in
        if o != current {
            if current >= 0 { y[current] = T(pow(sum, root)) }
            current = o
            sum = 0
        }
        if i >= 0 { sum += pow(Swift.abs(Double(x[i])), Double(p)) }
    }
    if current >= 0 { y[current] = T(pow(sum, root)) }
}

/// Average pooling of one plane. With `countIncludePad`, the divisor counts taps in the
/// padded extent (input plus explicit pads) but never taps beyond it (ceil mode overhang).
public func averagePoolPlane(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, geometry g: WindowGeometry,
                             padsEnd: [Int], countIncludePad: Bool) {
    let rank = g.inputSize.count
    let kernelCount = g.kernelCount
    var outPos = [Int](repeating: 0, count: rank), kPos = [Int](repeating: 0, count: rank)
    for o in 0..<g.outputCount {
        var rem = o
        for d in stride(from: rank - 1, through: 0, by: -1) { outPos[d] = rem % g.outputSize[d]; rem /= g.outputSize[d] }
        var sum: Float = 0
        var count = 0
        for k in 0..<kernelCount {
            var r = k
            for d in stride(from: rank - 1, through: 0, by: -1) { kPos[d] = r % g.kernel[d]; r /= g.kernel[d] }
            var index = 0, inside = true, inPadded = true
            for d in 0..<rank {
                let p = outPos[d] * g.strides[d] - g.padsBegin[d] + kPos[d] * g.dilations[d]
                if p < -g.padsBegin[d] || p >= g.inputSize[d] + padsEnd[d] { inPadded = false }
                if p < 0 || p >= g.inputSize[d] { inside = false } else { index = index * g.inputSize[d] + p }
            }
            if inside {
                sum += x[index]
                count += 1
            } else if countIncludePad && inPadded {
                count += 1
            }
        }
        y[o] = count > 0 ? sum / Float(count) : 0
    }
}

/// 2-D max pooling of one plane x[h, w] into y[oh, ow] (same contract as `maxPoolPlane`,
/// specialized for the common case; indices are flat within the plane, -1 in all-padding windows).
@inlinable
public func maxPoolPlane2D<T: Comparable>(_ x: UnsafePointer<T>, _ y: UnsafeMutablePointer<T>, geometry g: WindowGeometry,
                                          lowest: T, indices: UnsafeMutablePointer<Int>?) {
    let h = g.inputSize[0], w = g.inputSize[1], oh = g.outputSize[0], ow = g.outputSize[1]
    let kh = g.kernel[0], kw = g.kernel[1], sh = g.strides[0], sw = g.strides[1]
    let dh = g.dilations[0], dw = g.dilations[1], ph = g.padsBegin[0], pw = g.padsBegin[1]
    if indices == nil && ph == 0 && pw == 0 && (oh - 1) * sh + (kh - 1) * dh < h && (ow - 1) * sw + (kw - 1) * dw < w {
        // Every window inside the plane, no indices wanted: the first tap, then branch-free maxima
        // (a NaN first tap stays, later NaNs are skipped, as below).
        for oy in 0..<oh {
            let out = y + oy * ow, top = x + oy * sh * w
            for ox in 0..<ow { out[ox] = top[ox * sw] }
            for ky in 0..<kh {
                for kx in 0..<kw {
                    let tap = top + ky * dh * w + kx * dw
                    for ox in 0..<ow { let v = tap[ox * sw]; out[ox] = v > out[ox] ? v : out[ox] }
                }
            }
        }
        return
    }
    let window = Window2D(g)
    for oy in 0..<oh {
        for ox in 0..<ow {
            var best = lowest, bestIndex = -1
            window.forEachTapInside(oy: oy, ox: ox) { pixel, _ in
                let v = x[pixel]
                if bestIndex < 0 || v > best { best = v; bestIndex = pixel }
            }
            y[oy * ow + ox] = best
            indices?[oy * ow + ox] = bestIndex
        }
    }
}

/// 2-D average pooling of one plane (same contract as `averagePoolPlane`).
public func averagePoolPlane2D(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, geometry g: WindowGeometry,
                               padsEnd: [Int], countIncludePad: Bool) {
    let h = g.inputSize[0], w = g.inputSize[1], oh = g.outputSize[0], ow = g.outputSize[1]
    let kh = g.kernel[0], kw = g.kernel[1], sh = g.strides[0], sw = g.strides[1]
    let dh = g.dilations[0], dw = g.dilations[1], ph = g.padsBegin[0], pw = g.padsBegin[1]
    let hEnd = h + padsEnd[0], wEnd = w + padsEnd[1]
    for oy in 0..<oh {
        for ox in 0..<ow {
            var sum: Float = 0
            var count = 0
            for ky in 0..<kh {
                let iy = oy * sh - ph + ky * dh
                let rowInside = iy >= 0 && iy < h, rowPadded = iy >= -ph && iy < hEnd
                for kx in 0..<kw {
                    let ix = ox * sw - pw + kx * dw
                    if rowInside && ix >= 0 && ix < w {
                        sum += x[iy * w + ix]
                        count += 1
                    } else if countIncludePad && rowPadded && ix >= -pw && ix < wEnd {
                        count += 1
                    }
                }
            }
            y[oy * ow + ox] = count > 0 ? sum / Float(count) : 0
        }
    }
}

/// `maxPoolPlane2D` for the 2x2 stride-2 windows of CNNs, float planes with every window
/// inside and no indices: eight outputs at a time with AVX2 (same tap order, same NaN rule).
/// Returns false (nothing written) when the geometry or the CPU does not fit.
public func maxPoolPlane2x2(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, geometry g: WindowGeometry) -> Bool {
    guard int8GemmAccelerated, g.inputSize.count == 2, g.kernel == [2, 2], g.strides == [2, 2], g.dilations == [1, 1],
          g.padsBegin == [0, 0], 2 * g.outputSize[0] <= g.inputSize[0], 2 * g.outputSize[1] <= g.inputSize[1] else { return false }
    kerf_maxpool2x2_f32_avx2(x, g.inputSize[1], y, g.outputSize[0], g.outputSize[1])
    return true
}

/// `maxPoolPlane2D` without indices for float planes, any padding, stride and dilation:
/// non-generic, with the columns whose windows lie inside the row span done without bounds
/// checks. Same tap order and NaN rule (the first tap inside the plane, then a later tap
/// replaces the maximum only when greater); an all-padding window gives -infinity.
public func maxPoolPlane2DFloat(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, geometry g: WindowGeometry) {
    let h = g.inputSize[0], w = g.inputSize[1], oh = g.outputSize[0], ow = g.outputSize[1]
    let kh = g.kernel[0], kw = g.kernel[1], sh = g.strides[0], sw = g.strides[1]
    let dh = g.dilations[0], dw = g.dilations[1], ph = g.padsBegin[0], pw = g.padsBegin[1]
    // Output columns whose every tap kx lies inside [0, w): ox * sw - pw >= 0 and
    // ox * sw - pw + (kw - 1) * dw < w.
    let inLo = min(ow, (pw + sw - 1) / sw)
    let inHi = max(inLo, min(ow, w - 1 - (kw - 1) * dw + pw >= 0 ? (w - 1 - (kw - 1) * dw + pw) / sw + 1 : 0))
    for oy in 0..<oh {
        let out = y + oy * ow
        let rows = (0..<kh).map { oy * sh - ph + $0 * dh }.filter { $0 >= 0 && $0 < h }
        func checked(_ ox: Int) {
            var best = -Float.infinity, found = false
            for iy in rows {
                for kx in 0..<kw {
                    let ix = ox * sw - pw + kx * dw
                    if ix < 0 || ix >= w { continue }
                    let v = x[iy * w + ix]
                    if !found || v > best { best = v; found = true }
                }
            }
            out[ox] = best
        }
        for ox in 0..<inLo { checked(ox) }
        if let first = rows.first, inLo < inHi {
            let base = x + first * w - pw
            for ox in inLo..<inHi { out[ox] = base[ox * sw] }
            for (r, iy) in rows.enumerated() {
                let row = x + iy * w - pw
                for kx in (r == 0 ? 1 : 0)..<kw {
                    let tap = row + kx * dw
                    for ox in inLo..<inHi { let v = tap[ox * sw]; out[ox] = v > out[ox] ? v : out[ox] }
                }
            }
        } else {
            for ox in inLo..<inHi { checked(ox) }
        }
        for ox in inHi..<ow { checked(ox) }
    }
}
