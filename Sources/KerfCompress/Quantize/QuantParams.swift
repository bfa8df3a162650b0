import KerfCore

/// Affine quantization parameters of one tensor: real = (q - zeroPoint) * scale.
struct AffineParams: Equatable {
    var scale: Float
    var zeroPoint: Int

    /// Parameters mapping [low, high] onto the type's full integer range (`AffineQuantization`).
    init(low: Float, high: Float, type: ActivationType) {
        let (qmin, qmax) = type.range
        let p = AffineQuantization(low: low, high: high, qmin: qmin, qmax: qmax)
        self.init(scale: p.scale, zeroPoint: p.zeroPoint)
    }

    init(scale: Float, zeroPoint: Int) {
        self.scale = scale
        self.zeroPoint = zeroPoint
    }
}

/// Symmetric int8 weight quantization: q = round(w / scale) in [-127, 127], zero point 0.
/// `channels` scales along `axis` (per channel), or one scale when `axis` is nil.
struct QuantizedWeight {
    var values: Tensor   // int8, the weight's shape
    var scales: [Float]  // one per channel (or one)
    var axis: Int?
}

/// Quantizes a float weight symmetrically to int8, per channel along `axis` or per tensor.
/// Channels that are all zero get scale 1.
func quantizeWeight(_ w: Tensor, axis: Int?) throws -> QuantizedWeight {
    let values = w.array(of: Float.self)
    let shape = w.shape
    let channels = axis.map { shape[$0] } ?? 1
    let inner = axis.map { shape[($0 + 1)...].reduce(1, *) } ?? values.count
    // Element i belongs to channel (i / inner) % channels.
    let scales = values.withUnsafeBufferPointer { AffineQuantization.symmetricScales($0, channels: channels, inner: inner) }
    var q = try Tensor(uninitialized: .int8, shape: shape)
    q.withMutableElements(as: Int8.self) { out in
        for (i, v) in values.enumerated() {
            let r = (v / scales[(i / inner) % channels]).rounded(.toNearestOrEven)
            out[i] = Int8(min(max(r, -127), 127))
        }
    }
    return QuantizedWeight(values: q, scales: scales, axis: axis)
}

/// A bias quantized to int32 with scale inputScale * weightScale[c] (zero point 0), per output
/// channel when there are several weight scales.
func quantizeBias(_ b: Tensor, inputScale: Float, weightScales: [Float]) -> (values: Tensor, scales: [Float]) {
    let values = b.array(of: Float.self)
    let scales = weightScales.count == 1 ? [inputScale * weightScales[0]]
        : weightScales.map { inputScale * $0 }
    let q: [Int32] = values.enumerated().map { i, v in
        let s = scales.count == 1 ? scales[0] : scales[i]
        let r = (Double(v) / Double(s)).rounded(.toNearestOrEven)
        return Int32(min(max(r, Double(Int32.min)), Double(Int32.max)))
    }
    return (Tensor(shape: b.shape, values: q), scales)
}
