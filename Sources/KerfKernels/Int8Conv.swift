import KerfCKernels
// Building blocks of the int8 convolution (kerf.QuantizedConv): the input image turned
// channels-last once, so that im2row copies contiguous runs of channels instead of gathering
// each byte with a stride of one channel plane.

/// y[p * channels + c] = x[c * pixels + p]: one NCHW image [channels, pixels] made channels-last
/// [pixels, channels].
@inlinable
public func transposeToChannelsLast<T: FixedWidthInteger>(_ x: UnsafePointer<T>, channels: Int, pixels: Int,
                                                          into y: UnsafeMutablePointer<T>) {
    if T.bitWidth == 8 {  // bytes: 16x16 tiles in SSE2 registers (KerfCKernels/transpose_avx2.c)
        kerf_transpose_u8(UnsafeRawPointer(x).assumingMemoryBound(to: UInt8.self), channels, pixels, pixels,
                          UnsafeMutableRawPointer(y).assumingMemoryBound(to: UInt8.self), channels)
        return
    }
    // Tiles of 16 pixels keep both sides within a few cache lines.
    var p0 = 0
    while p0 < pixels {
        let p1 = min(p0 + 16, pixels)
        for c in 0..<channels {
            let src = x + c * pixels
            for p in p0..<p1 { y[p * channels + c] = src[p] }
        }
        p0 = p1
    }
}

/// Unfolds output positions `first ..< first + count` of one channels-last image
/// x[inputSize..., pixelStride] (the image's channels start at `x`; `channels` of them are used)
/// into rows[count, kernelCount * channels]: one row per output position, taps ordered
/// (kernel position, channel) — the order of `im2row`, and of ONNX Runtime's QLinearConv.
/// Taps in padding get `padding` (the input's zero point).
@inlinable
public func im2rowChannelsLast<T: FixedWidthInteger>(_ x: UnsafePointer<T>, pixelStride: Int, channels: Int,
                                                     geometry g: WindowGeometry, padding: T, first: Int, count: Int,
                                                     rows: UnsafeMutablePointer<T>) {
    let kc = g.kernelCount, width = kc * channels
    guard g.inputSize.count == 2 else {
        g.forEachTap { o, k, i in
            guard o >= first && o < first + count else { return }
            let dst = rows + (o - first) * width + k * channels
            if i < 0 { dst.update(repeating: padding, count: channels) } else { dst.update(from: x + i * pixelStride, count: channels) }
        }
        return
    }
    let h = g.inputSize[0], w = g.inputSize[1], ow = g.outputSize[1]
    let kh = g.kernel[0], kw = g.kernel[1], sh = g.strides[0], sw = g.strides[1], dh = g.dilations[0], dw = g.dilations[1]
    let ph = g.padsBegin[0], pw = g.padsBegin[1]
    if T.bitWidth == 8 && cpuHasAVX512BW {  // KerfCKernels/im2row_avx512.c, the same rows
        var window = kerf_window2d(h: h, w: w, kh: kh, kw: kw, sh: sh, sw: sw, dh: dh, dw: dw, ph: ph, pw: pw, ow: ow)
        kerf_im2row_bytes_2d(UnsafeRawPointer(x).assumingMemoryBound(to: UInt8.self), &window, pixelStride, channels,
                             UInt8(truncatingIfNeeded: padding), first, count, UnsafeMutableRawPointer(rows).assumingMemoryBound(to: UInt8.self))
        return
    }
    // With dense channels and dilation 1 the kw taps of one kernel row are one contiguous run.
    let runs = pixelStride == channels && dw == 1
    for o in first..<(first + count) {
        let oy = o / ow, ox = o % ow
        var dst = rows + (o - first) * width
        let ix0 = ox * sw - pw
        for ky in 0..<kh {
            let iy = oy * sh - ph + ky * dh
            if iy < 0 || iy >= h {
                dst.update(repeating: padding, count: kw * channels)
                dst += kw * channels
                continue
            }
            let line = x + iy * w * pixelStride
            if runs && ix0 >= 0 && ix0 + kw <= w {
                dst.update(from: line + ix0 * channels, count: kw * channels)
                dst += kw * channels
                continue
            }
            for kx in 0..<kw {
                let ix = ix0 + kx * dw
                if ix < 0 || ix >= w {
                    dst.update(repeating: padding, count: channels)
                } else {
                    dst.update(from: line + ix * pixelStride, count: channels)
                }
                dst += channels
            }
        }
    }
}

