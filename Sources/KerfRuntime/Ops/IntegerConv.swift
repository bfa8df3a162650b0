import KerfCore
import KerfKernels

// ConvInteger: Y[N, M, out...] (int32) = conv(X - x_zero_point, W - w_zero_point) for uint8 /
// int8 X and W, grouped; x_zero_point a scalar, w_zero_point a scalar or one per output
// channel. Exact (the wide int8 GEMM), weights packed per run: ONNX Runtime's own quantizer
// writes this only for dynamic Conv, which Kerf's quantizer keeps in float.

enum IntegerConvOps {
    static func register(_ r: inout [String: OperatorFactory]) {
        r["ConvInteger"] = { c in
            let window = try WindowAttributes(c)
            let group = try c.int("group", default: 1)
            guard group >= 1 else { throw KerfError.invalidModel("ConvInteger group must be >= 1") }
            return ClosureOperator { inputs in
                [try convInteger(try inputs.required(0, "x"), try inputs.required(1, "w"), xZero: inputs.optional(2) ?? nil,
                                 wZero: inputs.optional(3) ?? nil, window: window, group: group)]
            }
        }
    }
}

func convInteger(_ x: Tensor, _ w: Tensor, xZero: Tensor?, wZero: Tensor?, window: WindowAttributes, group: Int) throws -> Tensor {
    for t in [x, w] where t.dtype != .uint8 && t.dtype != .int8 {
        throw KerfError.unsupported("ConvInteger takes uint8 or int8 operands, got \(t.dtype)")
    }
    guard x.rank >= 3, w.rank == x.rank else { throw KerfError.shapeMismatch("ConvInteger x \(x.shape) and w \(w.shape) ranks do not fit") }
    let batch = x.shape[0], channels = x.shape[1], m = w.shape[0], kernel = Array(w.shape[2...])
    guard channels % group == 0, m % group == 0, w.shape[1] == channels / group else {
        throw KerfError.shapeMismatch("ConvInteger w \(w.shape) does not fit x \(x.shape) with group \(group)")
    }
    let xZeros = try xZero.map(integerValues) ?? [0], wZeros = try wZero.map(integerValues) ?? [0]
    guard xZeros.count == 1, wZeros.count == 1 || wZeros.count == m else { throw KerfError.shapeMismatch("ConvInteger zero point shapes") }
    let (g, _) = try window.geometry(input: Array(x.shape[2...]), kernel: kernel)
    let cg = channels / group, mg = m / group, kc = g.kernelCount, oc = g.outputCount, ic = g.inputCount, width = cg * kc
    try checkedElementCount([batch, m] + g.outputSize, dtype: .int32, "ConvInteger")
    var y = try Tensor(zeros: .int32, shape: [batch, m] + g.outputSize)
    if y.count == 0 || width == 0 { return y }
    // Per group: B[(tap, channel), j] = W[g * mg + j, channel, tap], im2row's tap order.
    let weights: [PackedInt8Weights] = try (0..<group).map { gi in
        let wv = try integerValues(w)
        // The bytes of W (int8 or uint8, as w's dtype says).
        var b = [UInt8](repeating: 0, count: width * mg)
        for j in 0..<mg {
            for ch in 0..<cg { for t in 0..<kc { b[(t * cg + ch) * mg + j] = UInt8(truncatingIfNeeded: wv[((gi * mg + j) * cg + ch) * kc + t]) } }
        }
        let zeros = wZeros.count == 1 ? wZeros : Array(wZeros[(gi * mg)..<((gi + 1) * mg)])
        return b.withUnsafeBufferPointer {
            PackedInt8Weights(bytes: UnsafeRawPointer($0.baseAddress!), signed: w.dtype == .int8, k: width, n: mg, rowStride: mg,
                              columnStride: 1, zeroPoints: zeros, layout: .wide)
        }
    }
    var rows = [UInt8](repeating: 0, count: oc * width)
    var acc = [Int32](repeating: 0, count: oc * mg)
    y.withMutableElements(as: Int32.self) { out in
        for n in 0..<batch {
            for gi in 0..<group {
                let src = x.storage.pointer + (n * channels + gi * cg) * ic
                rows.withUnsafeMutableBytes { r in
                    if x.dtype == .int8 {
                        im2row(src.assumingMemoryBound(to: Int8.self), channels: cg, geometry: g, padding: Int8(xZeros[0]),
                               rows: r.baseAddress!.assumingMemoryBound(to: Int8.self))
                    } else {
                        im2row(src.assumingMemoryBound(to: UInt8.self), channels: cg, geometry: g, padding: UInt8(xZeros[0]),
                               rows: r.baseAddress!.assumingMemoryBound(to: UInt8.self))
                    }
                    int8Gemm(m: oc, a: r.baseAddress!, aSigned: x.dtype == .int8, lda: width, aZeroPoint: xZeros[0], b: weights[gi],
                             c: &acc, ldc: mg)
                }
                for j in 0..<mg {
                    let dst = out.baseAddress! + (n * m + gi * mg + j) * oc
                    for p in 0..<oc { dst[p] = acc[p * mg + j] }
                }
            }
        }
    }
    return y
}
