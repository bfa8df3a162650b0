import KerfCore
import KerfKernels

// Conv: N-d, grouped (depthwise included), via im2col + GEMM per image and group.

enum ConvOps {
    static func register(_ r: inout [String: OperatorFactory]) {
        r["Conv"] = { c in
            let window = try WindowAttributes(c)
            let group = try c.int("group", default: 1)
            guard group >= 1 else { throw KerfError.invalidModel("Conv group must be >= 1") }
            return ClosureOperator { inputs in
                try withFloat32(inputs) { ins in
                    [try conv(try ins.required(0, "X"), try ins.required(1, "W"), ins.optional(2) ?? nil, window: window, group: group)]
                }
            }
        }
    }
}

/// Y[N, M, out...] = conv(X[N, C, in...], W[M, C/group, k...]) + B[M].
func conv(_ x: Tensor, _ w: Tensor, _ b: Tensor?, window: WindowAttributes, group: Int) throws -> Tensor {
    guard x.dtype == .float, w.dtype == .float, b == nil || b!.dtype == .float else {
        throw KerfError.unsupported("Conv supports float types, got \(x.dtype)")
    }
    guard x.rank >= 3, w.rank == x.rank else { throw KerfError.shapeMismatch("Conv X \(x.shape) and W \(w.shape) ranks do not fit") }
    let batch = x.shape[0], channels = x.shape[1], m = w.shape[0]
    let spatial = Array(x.shape[2...]), kernel = Array(w.shape[2...])
    guard channels % group == 0, m % group == 0, w.shape[1] == channels / group else {
        throw KerfError.shapeMismatch("Conv W \(w.shape) does not fit X \(x.shape) with group \(group)")
    }
    if let ks = window.kernelShape, ks != kernel { throw KerfError.shapeMismatch("kernel_shape \(ks) differs from W \(w.shape)") }
    if let b, b.count != m { throw KerfError.shapeMismatch("Conv B has \(b.count) elements, expected \(m)") }
    let (g, _) = try window.geometry(input: spatial, kernel: kernel)
    let out = Tensor(zeros: .float, shape: [batch, m] + g.outputSize)
    let cg = channels / group, mg = m / group
    let kc = g.kernelCount, oc = g.outputCount, ic = g.inputCount
    if oc == 0 || batch == 0 { return out }
    let pointwise = kc == 1 && g.strides.allSatisfy { $0 == 1 } && g.padsBegin.allSatisfy { $0 == 0 } && oc == ic
    var columns = pointwise ? [] : [Float](repeating: 0, count: cg * kc * oc)
    let xp = x.storage.pointer.assumingMemoryBound(to: Float.self)
    let wp = w.storage.pointer.assumingMemoryBound(to: Float.self)
    // oneDNN computes the last rows of a GEMM whose M is not a multiple of 16 with a tail
    // kernel that sums in another order, so those output channels round differently from the
    // rest (visible on ill-conditioned models such as light SqueezeNet). Zero rows pad M.
    let mgPadded = (mg + 15) / 16 * 16
    var paddedWeights: [Float]? = nil
    var rowBuffer: [Float] = []
    if mg > 16 && mgPadded != mg {
        var pw = [Float](repeating: 0, count: group * mgPadded * cg * kc)
        for gi in 0..<group {
            for r in 0..<mg { for j in 0..<(cg * kc) { pw[(gi * mgPadded + r) * cg * kc + j] = wp[(gi * mg + r) * cg * kc + j] } }
        }
        paddedWeights = pw
        rowBuffer = [Float](repeating: 0, count: mgPadded * oc)
    }
    let yp = out.storage.pointer.assumingMemoryBound(to: Float.self)
    columns.withUnsafeMutableBufferPointer { col in
        for n in 0..<batch {
            for gi in 0..<group {
                let xg = xp + (n * channels + gi * cg) * ic
                let source: UnsafePointer<Float>
                if pointwise {
                    source = UnsafePointer(xg)
                } else {
                    im2col(xg, channels: cg, geometry: g, columns: col.baseAddress!)
                    source = UnsafePointer(col.baseAddress!)
                }
                if let padded = paddedWeights {
                    // Rows computed in a padded buffer, then the real ones copied out.
                    padded.withUnsafeBufferPointer { pw in
                        rowBuffer.withUnsafeMutableBufferPointer { rb in
                            sgemm(transA: false, transB: false, m: mgPadded, n: oc, k: cg * kc, alpha: 1,
                                  a: pw.baseAddress! + gi * mgPadded * cg * kc, lda: cg * kc,
                                  b: source, ldb: oc, beta: 0, c: rb.baseAddress!, ldc: oc)
                            (yp + (n * m + gi * mg) * oc).update(from: rb.baseAddress!, count: mg * oc)
                        }
                    }
                } else {
                    sgemm(transA: false, transB: false, m: mg, n: oc, k: cg * kc, alpha: 1, a: wp + gi * mg * cg * kc, lda: cg * kc,
                          b: source, ldb: oc, beta: 0, c: yp + (n * m + gi * mg) * oc, ldc: oc)
                }
            }
        }
    }
    if let b {
        let bp = b.storage.pointer.assumingMemoryBound(to: Float.self)
        for n in 0..<batch { for j in 0..<m { let y = yp + (n * m + j) * oc; let v = bp[j]; for i in 0..<oc { y[i] += v } } }
    }
    return out
}
