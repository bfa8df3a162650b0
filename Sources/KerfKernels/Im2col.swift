/// Geometry of an N-d convolution or pooling window over one image.
/// All arrays have one entry per spatial dim; pads are (begin..., end...) as in ONNX.
public struct WindowGeometry {
    public var inputSize: [Int]
    public var kernel: [Int]
    public var strides: [Int]
    public var dilations: [Int]
    public var padsBegin: [Int]
    public var outputSize: [Int]

    public init(inputSize: [Int], kernel: [Int], strides: [Int], dilations: [Int], padsBegin: [Int], outputSize: [Int]) {
        self.inputSize = inputSize
        self.kernel = kernel
        self.strides = strides
        self.dilations = dilations
        self.padsBegin = padsBegin
        self.outputSize = outputSize
    }

    /// A 1-D geometry as the 2-D one over images of height 1 (kernel, stride, dilation 1 and no
    /// padding along the new first axis).
    public init(lifting g: WindowGeometry) {
        self.init(inputSize: [1] + g.inputSize, kernel: [1] + g.kernel, strides: [1] + g.strides, dilations: [1] + g.dilations,
                  padsBegin: [0] + g.padsBegin, outputSize: [1] + g.outputSize)
    }

    public var kernelCount: Int { kernel.reduce(1, *) }
    public var outputCount: Int { outputSize.reduce(1, *) }
    public var inputCount: Int { inputSize.reduce(1, *) }

    /// Calls body(outputIndex, kernelIndex, inputIndex or -1 when the tap falls in padding)
    /// for every output position and kernel tap, in row-major order of both.
    @inlinable
    public func forEachTap(_ body: (Int, Int, Int) -> Void) {
        let rank = inputSize.count
        var outPos = [Int](repeating: 0, count: rank)
        var kPos = [Int](repeating: 0, count: rank)
        for o in 0..<outputCount {
            var rem = o
            for d in stride(from: rank - 1, through: 0, by: -1) { outPos[d] = rem % outputSize[d]; rem /= outputSize[d] }
            for kk in 0..<kernelCount {
                var r = kk
                for d in stride(from: rank - 1, through: 0, by: -1) { kPos[d] = r % kernel[d]; r /= kernel[d] }
                var index = 0
                var inside = true
                for d in 0..<rank {
                    let x = outPos[d] * strides[d] - padsBegin[d] + kPos[d] * dilations[d]
                    if x < 0 || x >= inputSize[d] { inside = false; break }
                    index = index * inputSize[d] + x
                }
                body(o, kk, inside ? index : -1)
            }
        }
    }
}

/// Unfolds one image x[C, inputSize...] into columns[C * kernelCount, outputCount]
/// (zeros where the window covers padding), so that conv = W[M, C*kernelCount] * columns.
public func im2col(_ x: UnsafePointer<Float>, channels: Int, geometry g: WindowGeometry,
                   columns: UnsafeMutablePointer<Float>) {
    let kc = g.kernelCount, oc = g.outputCount, ic = g.inputCount
    if g.inputSize.count == 2 {
        im2col2D(x, channels: channels, g: g, columns: columns)
        return
    }
    for c in 0..<channels {
        let xc = x + c * ic
        let col = columns + c * kc * oc
        g.forEachTap { o, k, i in col[k * oc + o] = i >= 0 ? xc[i] : 0 }
    }
}

private func im2col2D(_ x: UnsafePointer<Float>, channels: Int, g: WindowGeometry, columns: UnsafeMutablePointer<Float>) {
    let h = g.inputSize[0], w = g.inputSize[1]
    let kh = g.kernel[0], kw = g.kernel[1]
    let oh = g.outputSize[0], ow = g.outputSize[1]
    let sh = g.strides[0], sw = g.strides[1], dh = g.dilations[0], dw = g.dilations[1]
    let ph = g.padsBegin[0], pw = g.padsBegin[1]
    var row = 0
    for c in 0..<channels {
        let xc = x + c * h * w
        for ky in 0..<kh {
            for kx in 0..<kw {
                let col = columns + row * oh * ow
                row += 1
                for oy in 0..<oh {
                    let iy = oy * sh - ph + ky * dh
                    let dst = col + oy * ow
                    if iy < 0 || iy >= h {
                        dst.update(repeating: 0, count: ow)
                        continue
                    }
                    let src = xc + iy * w
                    // Outputs whose tap ix = ox * sw - pw + kx * dw lies inside [0, w).
                    let offset = kx * dw - pw
                    let lo = offset >= 0 ? 0 : min(ow, (-offset + sw - 1) / sw)
                    let hi = w - offset <= 0 ? 0 : min(ow, (w - offset + sw - 1) / sw)
                    if lo >= hi {
                        dst.update(repeating: 0, count: ow)
                        continue
                    }
                    if lo > 0 { dst.update(repeating: 0, count: lo) }
                    if sw == 1 {
                        (dst + lo).update(from: src + lo + offset, count: hi - lo)
                    } else {
                        for ox in lo..<hi { dst[ox] = src[ox * sw + offset] }
                    }
                    if hi < ow { (dst + hi).update(repeating: 0, count: ow - hi) }
                }
            }
        }
    }
}

/// Unfolds one image x[C, inputSize...] of 8-bit integers into rows[outputCount, kernelCount * C]:
/// one row per output position, taps ordered (kernel position, channel) — the NHWC order
/// ONNX Runtime's QLinearConv multiplies in, so that int8 products pair up the same way.
/// Taps in padding get `padding` (the input's zero point).
@inlinable
public func im2row<T: FixedWidthInteger>(_ x: UnsafePointer<T>, channels: Int, geometry g: WindowGeometry, padding: T,
                                         rows: UnsafeMutablePointer<T>) {
    let kc = g.kernelCount, ic = g.inputCount, width = kc * channels
    if g.inputSize.count == 2 {
        let h = g.inputSize[0], w = g.inputSize[1], oh = g.outputSize[0], ow = g.outputSize[1]
        let kh = g.kernel[0], kw = g.kernel[1]
        for oy in 0..<oh {
            for ox in 0..<ow {
                var dst = rows + (oy * ow + ox) * width
                for ky in 0..<kh {
                    let iy = oy * g.strides[0] - g.padsBegin[0] + ky * g.dilations[0]
                    for kx in 0..<kw {
                        let ix = ox * g.strides[1] - g.padsBegin[1] + kx * g.dilations[1]
                        if iy < 0 || iy >= h || ix < 0 || ix >= w {
                            dst.update(repeating: padding, count: channels)
                        } else {
                            let src = x + iy * w + ix
                            for c in 0..<channels { dst[c] = src[c * ic] }
                        }
                        dst += channels
                    }
                }
            }
        }
        return
    }
    g.forEachTap { o, k, i in
        let dst = rows + o * width + k * channels
        if i < 0 {
            dst.update(repeating: padding, count: channels)
        } else {
            for c in 0..<channels { dst[c] = x[c * ic + i] }
        }
    }
}

/// A 2-D window geometry's numbers as scalars, for loops over output positions.
public struct Window2D {
    public let h: Int, w: Int, kh: Int, kw: Int, sh: Int, sw: Int, dh: Int, dw: Int, ph: Int, pw: Int

    /// `g` must be 2-D.
    @inlinable
    public init(_ g: WindowGeometry) {
        (h, w, kh, kw) = (g.inputSize[0], g.inputSize[1], g.kernel[0], g.kernel[1])
        (sh, sw, dh, dw, ph, pw) = (g.strides[0], g.strides[1], g.dilations[0], g.dilations[1], g.padsBegin[0], g.padsBegin[1])
    }

    /// Calls body(pixel, tap) for each tap of output position (oy, ox) that falls inside the
    /// image, in row-major kernel order: pixel = iy * w + ix, tap = ky * kw + kx.
    @inlinable @inline(__always)
    public func forEachTapInside(oy: Int, ox: Int, _ body: (_ pixel: Int, _ tap: Int) -> Void) {
        for ky in 0..<kh {
            let iy = oy * sh - ph + ky * dh
            if iy < 0 || iy >= h { continue }
            for kx in 0..<kw {
                let ix = ox * sw - pw + kx * dw
                if ix < 0 || ix >= w { continue }
                body(iy * w + ix, ky * kw + kx)
            }
        }
    }
}
