import KerfCore
import KerfKernels

// Fake quantization for quantization-aware training (`kerf.training` domain), float32 only:
//
// - FakeQuantize(X, low, high) -> Y: X quantized with the affine parameters of the range
//   [low, high] (`AffineQuantization`, integers in [qmin, qmax]) and dequantized again. With three
//   outputs (training), the range first moves towards the batch's: new_low = m·low + (1 − m)·min X,
//   new_high likewise (m: the `momentum` attribute), Y uses the new range, and outputs 1 and 2
//   return it. With `dynamic` = 1 there are no range inputs: the range is X's own min and max,
//   as DynamicQuantizeLinear computes it at run time.
// - FakeQuantizeGrad(dY, X, low, high) -> dX: the clipped straight-through estimator, dY where
//   X's quantized value lies in [qmin, qmax], 0 elsewhere (dynamic: no range inputs).
// - FakeQuantizeWeight(W) -> Y: symmetric int8, one scale max|W_c| / 127 per slice along `axis`
//   (per tensor without it); its gradient is dY itself (every element lies inside the range).

/// The integer range and range rule of one FakeQuantize node.
struct FakeQuantization {
    var qmin: Int
    var qmax: Int
    var dynamic: Bool

    init(_ c: OperatorContext) throws {
        qmin = try c.int("qmin", default: 0)
        qmax = try c.int("qmax", default: 255)
        dynamic = try c.int("dynamic", default: 0) != 0
        guard qmin < qmax, qmin >= -(1 << 16), qmax <= 1 << 16 else {
            throw KerfError.invalidModel("\(c.node.label): FakeQuantize needs qmin < qmax, got [\(qmin), \(qmax)]")
        }
    }

    /// The range the node quantizes `x` with: x's own (dynamic) or the inputs'.
    func range(_ x: Tensor, low: Tensor?, high: Tensor?) throws -> (low: Float, high: Float) {
        if dynamic {
            let m = minimumAndMaximum(floats(x), count: x.count)
            return (m.min, m.max)
        }
        guard let low, let high else { throw KerfError.invalidModel("FakeQuantize needs its low and high inputs") }
        return (try scalar(low, "low"), try scalar(high, "high"))
    }

    func parameters(_ range: (low: Float, high: Float)) -> AffineQuantization {
        AffineQuantization(low: range.low, high: range.high, qmin: qmin, qmax: qmax)
    }
}

/// `FakeQuantize`: [Y] or, with `momentum` (training), [Y, new_low, new_high].
func fakeQuantizeActivation(_ x: Tensor, low: Tensor?, high: Tensor?, rule: FakeQuantization, momentum: Float?) throws -> [Tensor] {
    try requireFloat(x, "FakeQuantize")
    var range = try rule.range(x, low: low, high: high)
    var updated: [Tensor] = []
    if let momentum, !rule.dynamic, let low, let high {
        let batch = minimumAndMaximum(floats(x), count: x.count)
        range = (momentum * range.low + (1 - momentum) * batch.min, momentum * range.high + (1 - momentum) * batch.max)
        updated = [Tensor(shape: low.shape, values: [range.low]), Tensor(shape: high.shape, values: [range.high])]
    }
    let p = rule.parameters(range)
    let y = try Tensor(uninitialized: .float, shape: x.shape)
    fakeQuantize(floats(x), mutableFloats(y), count: x.count, scale: p.scale, zeroPoint: p.zeroPoint, qmin: rule.qmin, qmax: rule.qmax)
    return [y] + updated
}

/// `FakeQuantizeGrad(dY, X, low, high) -> dX`.
func fakeQuantizeGradient(dY: Tensor, x: Tensor, low: Tensor?, high: Tensor?, rule: FakeQuantization) throws -> Tensor {
    try requireFloat(dY, "FakeQuantizeGrad")
    try requireFloat(x, "FakeQuantizeGrad")
    guard dY.shape == x.shape else { throw KerfError.shapeMismatch("FakeQuantizeGrad: dY \(dY.shape) does not fit X \(x.shape)") }
    let p = rule.parameters(try rule.range(x, low: low, high: high))
    let dX = try Tensor(uninitialized: .float, shape: x.shape)
    fakeQuantizeGradient(floats(dY), floats(x), mutableFloats(dX), count: x.count, scale: p.scale, zeroPoint: p.zeroPoint,
                         qmin: rule.qmin, qmax: rule.qmax)
    return dX
}

/// `FakeQuantizeWeight(W) -> Y`, one scale per slice along `axis` (nil: per tensor).
func fakeQuantizeWeight(_ w: Tensor, axis: Int?) throws -> Tensor {
    try requireFloat(w, "FakeQuantizeWeight")
    var outer = 1, channels = 1, inner = w.count
    if let axis {
        guard axis >= -w.rank, axis < w.rank else {
            throw KerfError.invalidModel("FakeQuantizeWeight axis \(axis) is out of range for a weight of rank \(w.rank)")
        }
        let a = axis < 0 ? axis + w.rank : axis
        outer = w.shape[..<a].reduce(1, *)
        channels = w.shape[a]
        inner = w.shape[(a + 1)...].reduce(1, *)
    }
    let y = try Tensor(uninitialized: .float, shape: w.shape)
    let scales = AffineQuantization.symmetricScales(UnsafeBufferPointer(start: floats(w), count: w.count), channels: channels, inner: inner)
    scales.withUnsafeBufferPointer {
        fakeQuantizeSymmetric(floats(w), mutableFloats(y), outer: outer, channels: channels, inner: inner, scales: $0.baseAddress!)
    }
    return y
}

private func requireFloat(_ t: Tensor, _ op: String) throws {
    guard t.dtype == .float else { throw KerfError.unsupported("\(op) of \(t.dtype) (float32 only)") }
}

private func scalar(_ t: Tensor, _ what: String) throws -> Float {
    guard t.dtype == .float, t.count == 1 else {
        throw KerfError.shapeMismatch("FakeQuantize \(what) must be one float, got \(t.dtype) \(t.shape)")
    }
    let v = t.withElements(as: Float.self) { $0[0] }
    guard v.isFinite else { throw KerfError.invalidArgument("FakeQuantize \(what) is \(v)") }
    return v
}

private func floats(_ t: Tensor) -> UnsafePointer<Float> { UnsafePointer(t.storage.pointer.assumingMemoryBound(to: Float.self)) }
private func mutableFloats(_ t: Tensor) -> UnsafeMutablePointer<Float> { t.storage.pointer.assumingMemoryBound(to: Float.self) }
