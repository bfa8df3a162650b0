/// Affine quantization parameters of one tensor: real = (q − zeroPoint)·scale, q an integer in
/// [qmin, qmax]. The one rule every part of Kerf uses to turn a float range into parameters
/// (the static quantizer's calibrated ranges, quantization-aware training's fake quantization).
public struct AffineQuantization: Equatable, Sendable {
    public var scale: Float
    public var zeroPoint: Int

    /// Parameters mapping [low, high], widened to contain 0, onto [qmin, qmax], as ONNX
    /// Runtime's quantizer computes them: scale = (high − low) / (qmax − qmin), zero point
    /// round(qmin − low / scale) clamped to [qmin, qmax]. A zero-width (or non-finite) range gets
    /// scale 1 and zero point 0.
    public init(low: Float, high: Float, qmin: Int, qmax: Int) {
        let lo = min(low, 0), hi = max(high, 0)
        guard hi > lo, (hi - lo).isFinite else {
            self.init(scale: 1, zeroPoint: 0)
            return
        }
        let scale = (hi - lo) / Float(qmax - qmin)
        let zp = (Float(qmin) - lo / scale).rounded(.toNearestOrEven)
        self.init(scale: scale, zeroPoint: Int(min(max(zp, Float(qmin)), Float(qmax))))
    }

    public init(scale: Float, zeroPoint: Int) {
        self.scale = scale
        self.zeroPoint = zeroPoint
    }

    /// Symmetric int8 weight scales: max|w| / 127 per channel (1 for an all-zero channel), so
    /// round(w / scale) lies in [−127, 127]. `w` is laid out [outer, channels, inner].
    public static func symmetricScales(_ w: UnsafeBufferPointer<Float>, channels: Int, inner: Int) -> [Float] {
        var absMax = [Float](repeating: 0, count: channels)
        guard channels > 0, inner > 0 else { return absMax }
        for (i, v) in w.enumerated() {
            let c = (i / inner) % channels
            absMax[c] = max(absMax[c], abs(v))
        }
        return absMax.map { $0 > 0 ? $0 / 127 : 1 }
    }
}
