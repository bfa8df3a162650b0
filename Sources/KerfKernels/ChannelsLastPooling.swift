// 2-D pooling of channels-last (NHWC) images: every tap is a contiguous vector of channels.
// Each output element sees the same taps in the same order as the per-plane NCHW kernels in
// Pooling.swift, so results are bitwise equal to them.

/// Max pooling of output rows `rows` of one image x[h, w, channels] into y[oh, ow, channels]
/// (2-D `g`). Per channel: the first tap inside the image, then a later tap replaces the maximum
/// only when greater (so a NaN first tap stays and later NaNs are skipped); a window entirely
/// in padding gives `lowest` (-infinity for floats).
@inlinable
public func maxPoolChannelsLast<T: Comparable>(_ x: UnsafePointer<T>, _ y: UnsafeMutablePointer<T>, channels: Int,
                                               geometry g: WindowGeometry, rows: Range<Int>, lowest: T) {
    let window = Window2D(g), ow = g.outputSize[1]
    for oy in rows {
        for ox in 0..<ow {
            let out = y + (oy * ow + ox) * channels
            var found = false
            window.forEachTapInside(oy: oy, ox: ox) { pixel, _ in
                let tap = x + pixel * channels
                if found {
                    for c in 0..<channels { let v = tap[c]; out[c] = v > out[c] ? v : out[c] }
                } else {
                    out.update(from: tap, count: channels)
                    found = true
                }
            }
            if !found { out.update(repeating: lowest, count: channels) }
        }
    }
}

/// Average pooling of output rows `rows` of one image x[h, w, channels] into
/// y[oh, ow, channels] (2-D `g`; `padsEnd` and `countIncludePad` as in `averagePoolPlane2D`).
/// `sums` is scratch for `channels` floats.
public func averagePoolChannelsLast(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, channels: Int,
                                    geometry g: WindowGeometry, padsEnd: [Int], countIncludePad: Bool, rows: Range<Int>,
                                    sums: UnsafeMutablePointer<Float>) {
    let h = g.inputSize[0], w = g.inputSize[1], ow = g.outputSize[1]
    let kh = g.kernel[0], kw = g.kernel[1], sh = g.strides[0], sw = g.strides[1]
    let dh = g.dilations[0], dw = g.dilations[1], ph = g.padsBegin[0], pw = g.padsBegin[1]
    let hEnd = h + padsEnd[0], wEnd = w + padsEnd[1]
    for oy in rows {
        for ox in 0..<ow {
            sums.update(repeating: 0, count: channels)
            var count = 0
            for ky in 0..<kh {
                let iy = oy * sh - ph + ky * dh
                let rowInside = iy >= 0 && iy < h, rowPadded = iy >= -ph && iy < hEnd
                for kx in 0..<kw {
                    let ix = ox * sw - pw + kx * dw
                    if rowInside && ix >= 0 && ix < w {
                        let tap = x + (iy * w + ix) * channels
                        for c in 0..<channels { sums[c] += tap[c] }
                        count += 1
                    } else if countIncludePad && rowPadded && ix >= -pw && ix < wEnd {
                        count += 1
                    }
                }
            }
            let out = y + (oy * ow + ox) * channels
            if count > 0 {
                let divisor = Float(count)
                for c in 0..<channels { out[c] = sums[c] / divisor }
            } else {
                out.update(repeating: 0, count: channels)
            }
        }
    }
}

/// y[c] = mean over p of x[p, c] for one image x[positions, channels]: the sum in position
/// order, then one divide (as the NCHW global average pool).
public func globalAveragePoolChannelsLast(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, positions: Int, channels: Int) {
    y.update(repeating: 0, count: channels)
    for p in 0..<positions {
        let row = x + p * channels
        for c in 0..<channels { y[c] += row[c] }
    }
    let divisor = Float(positions)
    for c in 0..<channels { y[c] /= divisor }
}
