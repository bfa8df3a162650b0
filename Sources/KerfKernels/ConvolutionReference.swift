// Convolution forward and backward by im2col (col2im) and GEMM, in float or double, for any
// number of spatial dims: the path of double tensors and of what oneDNN has no kernel for.
// All tensors are dense row-major NCHW-style: x[N, C, in...], w[M, C/group, k...],
// y[N, M, out...]. Callers validate shapes; these functions only index within them. Scratch
// buffers (`ConvolutionShape.columnBytes` each) must be given unless the shape is pointwise.

/// The sizes of one convolution: batch, channels in and out, group and the window of one image.
public struct ConvolutionShape {
    public var batch: Int
    public var channels: Int
    public var outChannels: Int
    public var group: Int
    public var geometry: WindowGeometry

    public init(batch: Int, channels: Int, outChannels: Int, group: Int, geometry: WindowGeometry) {
        self.batch = batch
        self.channels = channels
        self.outChannels = outChannels
        self.group = group
        self.geometry = geometry
    }

    var channelsPerGroup: Int { channels / group }
    var outChannelsPerGroup: Int { outChannels / group }
    /// Rows of one group's im2col matrix: C/group times the kernel size.
    var columnRows: Int { channelsPerGroup * geometry.kernelCount }
    /// True when the im2col matrix is the image itself (1x1 kernel, stride 1, no padding).
    var pointwise: Bool {
        let g = geometry
        return g.kernelCount == 1 && g.strides.allSatisfy { $0 == 1 } && g.padsBegin.allSatisfy { $0 == 0 }
            && g.outputCount == g.inputCount
    }
    /// Bytes of one worker's im2col buffer.
    public func columnBytes(elementSize: Int) -> Int { pointwise ? 0 : columnRows * geometry.outputCount * elementSize }
}

/// An element type of the reference convolution: float (GEMMs by oneDNN's sgemm) or double.
protocol ConvolutionElement: BinaryFloatingPoint {
    /// Row-major C[m, n] = op(A)·op(B) + beta·C, as `sgemm` (beta 0: C not read).
    static func gemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, a: UnsafePointer<Self>, lda: Int,
                     b: UnsafePointer<Self>, ldb: Int, beta: Self, c: UnsafeMutablePointer<Self>, ldc: Int)
}

extension Float: ConvolutionElement {
    static func gemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int,
                     b: UnsafePointer<Float>, ldb: Int, beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
        sgemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: 1, a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
    }
}

extension Double: ConvolutionElement {
    /// Plain loops (double convolutions are for checking, not for speed).
    static func gemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, a: UnsafePointer<Double>, lda: Int,
                     b: UnsafePointer<Double>, ldb: Int, beta: Double, c: UnsafeMutablePointer<Double>, ldc: Int) {
        for i in 0..<m {
            let row = c + i * ldc
            if beta == 0 { row.update(repeating: 0, count: n) } else if beta != 1 { for j in 0..<n { row[j] *= beta } }
            if transB {
                for j in 0..<n {
                    var s = 0.0
                    for p in 0..<k { s += (transA ? a[p * lda + i] : a[i * lda + p]) * b[j * ldb + p] }
                    row[j] += s
                }
            } else {
                for p in 0..<k {
                    let v = transA ? a[p * lda + i] : a[i * lda + p]
                    if v == 0 { continue }
                    let bp = b + p * ldb
                    for j in 0..<n { row[j] += v * bp[j] }
                }
            }
        }
    }
}

// MARK: Public entry points (float and double)

/// y = conv(x, w) + bias (bias[M] optional). `scratch` holds `workers` buffers of at least
/// `shape.columnBytes` each; images run in parallel on up to `workers` threads.
public func convolutionReference(_ x: UnsafePointer<Double>, _ w: UnsafePointer<Double>, bias: UnsafePointer<Double>?,
                                 _ y: UnsafeMutablePointer<Double>, shape: ConvolutionShape, scratch: [UnsafeMutableRawPointer?]) {
    forward(x, w, bias, y, shape, scratch)
}

/// dx = the gradient of conv(x, w) with respect to x, from dy and w (same contract as
/// `convolutionReference`; dx is overwritten).
public func convolutionBackwardDataReference(_ dy: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>,
                                             shape: ConvolutionShape, scratch: [UnsafeMutableRawPointer?]) {
    backwardData(dy, w, dx, shape, scratch)
}

public func convolutionBackwardDataReference(_ dy: UnsafePointer<Double>, _ w: UnsafePointer<Double>, _ dx: UnsafeMutablePointer<Double>,
                                             shape: ConvolutionShape, scratch: [UnsafeMutableRawPointer?]) {
    backwardData(dy, w, dx, shape, scratch)
}

/// dw (and db[M], when given) = the gradients of conv(x, w) + b with respect to w and b, from dy
/// and x; both overwritten. One worker (`scratch` needs one buffer of `columnBytes`).
public func convolutionBackwardWeightsReference(_ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>, _ dw: UnsafeMutablePointer<Float>,
                                                _ db: UnsafeMutablePointer<Float>?, shape: ConvolutionShape, scratch: UnsafeMutableRawPointer?) {
    backwardWeights(dy, x, dw, db, shape, scratch)
}

public func convolutionBackwardWeightsReference(_ dy: UnsafePointer<Double>, _ x: UnsafePointer<Double>, _ dw: UnsafeMutablePointer<Double>,
                                                _ db: UnsafeMutablePointer<Double>?, shape: ConvolutionShape, scratch: UnsafeMutableRawPointer?) {
    backwardWeights(dy, x, dw, db, shape, scratch)
}

// MARK: Generic implementations

private func forward<T: ConvolutionElement>(_ x: UnsafePointer<T>, _ w: UnsafePointer<T>, _ bias: UnsafePointer<T>?,
                                            _ y: UnsafeMutablePointer<T>, _ s: ConvolutionShape, _ scratch: [UnsafeMutableRawPointer?]) {
    let g = s.geometry, cg = s.channelsPerGroup, mg = s.outChannelsPerGroup
    let ic = g.inputCount, oc = g.outputCount, rows = s.columnRows
    parallelFor(s.batch, threads: max(1, scratch.count)) { worker, n in
        let columns = scratch[worker]?.assumingMemoryBound(to: T.self)
        for gi in 0..<s.group {
            let xg = x + (n * s.channels + gi * cg) * ic
            let source = gemmOperand(xg, s, columns)
            let yg = y + (n * s.outChannels + gi * mg) * oc
            T.gemm(transA: false, transB: false, m: mg, n: oc, k: rows, a: w + gi * mg * rows, lda: rows, b: source, ldb: oc,
                   beta: 0, c: yg, ldc: oc)
            if let bias {
                for j in 0..<mg {
                    let v = bias[gi * mg + j], row = yg + j * oc
                    for i in 0..<oc { row[i] += v }
                }
            }
        }
    }
}

private func backwardData<T: ConvolutionElement>(_ dy: UnsafePointer<T>, _ w: UnsafePointer<T>, _ dx: UnsafeMutablePointer<T>,
                                                 _ s: ConvolutionShape, _ scratch: [UnsafeMutableRawPointer?]) {
    let g = s.geometry, cg = s.channelsPerGroup, mg = s.outChannelsPerGroup
    let ic = g.inputCount, oc = g.outputCount, rows = s.columnRows
    parallelFor(s.batch, threads: max(1, scratch.count)) { worker, n in
        let columns = scratch[worker]?.assumingMemoryBound(to: T.self)
        for gi in 0..<s.group {
            let dxg = dx + (n * s.channels + gi * cg) * ic
            let dyg = dy + (n * s.outChannels + gi * mg) * oc
            // columns[rows, oc] = wgᵀ[rows, mg] · dyg[mg, oc], folded back onto the image.
            let target = s.pointwise ? dxg : columns!
            T.gemm(transA: true, transB: false, m: rows, n: oc, k: mg, a: w + gi * mg * rows, lda: rows, b: dyg, ldb: oc,
                   beta: 0, c: target, ldc: oc)
            if target != dxg { fold(UnsafePointer(target), channels: cg, geometry: g, image: dxg) }
        }
    }
}

private func backwardWeights<T: ConvolutionElement>(_ dy: UnsafePointer<T>, _ x: UnsafePointer<T>, _ dw: UnsafeMutablePointer<T>,
                                                    _ db: UnsafeMutablePointer<T>?, _ s: ConvolutionShape,
                                                    _ scratch: UnsafeMutableRawPointer?) {
    let g = s.geometry, cg = s.channelsPerGroup, mg = s.outChannelsPerGroup
    let ic = g.inputCount, oc = g.outputCount, rows = s.columnRows
    let columns = scratch?.assumingMemoryBound(to: T.self)
    dw.update(repeating: 0, count: s.outChannels * rows)
    db?.update(repeating: 0, count: s.outChannels)
    for n in 0..<s.batch {
        for gi in 0..<s.group {
            let xg = x + (n * s.channels + gi * cg) * ic
            let dyg = dy + (n * s.outChannels + gi * mg) * oc
            let source = gemmOperand(xg, s, columns)
            // dwg[mg, rows] += dyg[mg, oc] · columnsᵀ[oc, rows]
            T.gemm(transA: false, transB: true, m: mg, n: rows, k: oc, a: dyg, lda: oc, b: source, ldb: oc,
                   beta: 1, c: dw + gi * mg * rows, ldc: rows)
            if let db {
                for j in 0..<mg {
                    var sum: T = 0
                    let row = dyg + j * oc
                    for i in 0..<oc { sum += row[i] }
                    db[gi * mg + j] += sum
                }
            }
        }
    }
}

/// The [columnRows, outputCount] GEMM operand of one image's group `xg` (channelsPerGroup
/// channels): `xg` itself for a pointwise convolution, else its windows unfolded into `columns`.
@inline(__always)
private func gemmOperand<T: BinaryFloatingPoint>(_ xg: UnsafePointer<T>, _ s: ConvolutionShape, _ columns: UnsafeMutablePointer<T>?) -> UnsafePointer<T> {
    if s.pointwise { return xg }
    unfold(xg, channels: s.channelsPerGroup, geometry: s.geometry, columns: columns!)
    return UnsafePointer(columns!)
}

/// im2col of one group's image x[C, in...] into columns[C · kernelCount, outputCount] (zeros
/// where a tap falls in padding).
private func unfold<T: BinaryFloatingPoint>(_ x: UnsafePointer<T>, channels: Int, geometry g: WindowGeometry,
                                            columns: UnsafeMutablePointer<T>) {
    if T.self == Float.self {
        im2col(UnsafeRawPointer(x).assumingMemoryBound(to: Float.self), channels: channels, geometry: g,
               columns: UnsafeMutableRawPointer(columns).assumingMemoryBound(to: Float.self))
        return
    }
    let kc = g.kernelCount, oc = g.outputCount, ic = g.inputCount
    for c in 0..<channels {
        let xc = x + c * ic, col = columns + c * kc * oc
        g.forEachTap { o, k, i in col[k * oc + o] = i >= 0 ? xc[i] : 0 }
    }
}

/// col2im: the transpose of `unfold`. image[C, in...] = Σ over taps of the columns that read
/// each element (overwritten; elements no tap reads get zero).
private func fold<T: BinaryFloatingPoint>(_ columns: UnsafePointer<T>, channels: Int, geometry g: WindowGeometry,
                                          image: UnsafeMutablePointer<T>) {
    let kc = g.kernelCount, oc = g.outputCount, ic = g.inputCount
    image.update(repeating: 0, count: channels * ic)
    if g.inputSize.count == 2 {
        fold2D(columns, channels: channels, g: g, image: image)
        return
    }
    for c in 0..<channels {
        let xc = image + c * ic, col = columns + c * kc * oc
        g.forEachTap { o, k, i in if i >= 0 { xc[i] += col[k * oc + o] } }
    }
}

private func fold2D<T: BinaryFloatingPoint>(_ columns: UnsafePointer<T>, channels: Int, g: WindowGeometry,
                                            image: UnsafeMutablePointer<T>) {
    let h = g.inputSize[0], w = g.inputSize[1], kh = g.kernel[0], kw = g.kernel[1]
    let oh = g.outputSize[0], ow = g.outputSize[1]
    let sh = g.strides[0], sw = g.strides[1], dh = g.dilations[0], dw = g.dilations[1]
    let ph = g.padsBegin[0], pw = g.padsBegin[1]
    var row = 0
    for c in 0..<channels {
        let xc = image + c * h * w
        for ky in 0..<kh {
            for kx in 0..<kw {
                let col = columns + row * oh * ow
                row += 1
                // Outputs whose tap ix = ox · sw + offset lies inside [0, w).
                let offset = kx * dw - pw
                let lo = offset >= 0 ? 0 : min(ow, (-offset + sw - 1) / sw)
                let hi = w - offset <= 0 ? 0 : min(ow, (w - offset + sw - 1) / sw)
                guard lo < hi else { continue }
                for oy in 0..<oh {
                    let iy = oy * sh - ph + ky * dh
                    if iy < 0 || iy >= h { continue }
                    let src = col + oy * ow, dst = xc + iy * w + offset
                    if sw == 1 {
                        for ox in lo..<hi { dst[ox] += src[ox] }
                    } else {
                        for ox in lo..<hi { dst[ox * sw] += src[ox] }
                    }
                }
            }
        }
    }
}
