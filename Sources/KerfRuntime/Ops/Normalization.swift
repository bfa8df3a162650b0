import KerfCore
import KerfKernels
#if canImport(Glibc)
import Glibc
#endif

// BatchNormalization, LRN, Softmax, LogSoftmax.

enum NormalizationOps {
    static func register(_ r: inout [String: OperatorFactory]) {
        r["BatchNormalization"] = { c in
            let epsilon = try c.float("epsilon", default: 1e-5)
            let momentum = try c.float("momentum", default: 0.9)
            let trainingMode = try c.int("training_mode", default: 0)
            let training = c.opset >= 14 && trainingMode != 0
            return ClosureOperator { inputs in
                try withFloat32(inputs) { ins in
                    try batchNorm(try ins.required(0), scale: try ins.required(1), bias: try ins.required(2),
                                  mean: try ins.required(3), variance: try ins.required(4),
                                  epsilon: epsilon, momentum: momentum, training: training)
                }
            }
        }
        r["LRN"] = { c in
            let alpha = try c.float("alpha", default: 1e-4), beta = try c.float("beta", default: 0.75)
            let bias = try c.float("bias", default: 1)
            guard let size = try c.int("size"), size > 0 else { throw KerfError.invalidModel("LRN needs a positive size") }
            return ClosureOperator { inputs in
                try withFloat32(inputs) { ins in [try lrn(try float32Input(try ins.required(0), "LRN"), size: size, alpha: alpha, beta: beta, bias: bias)] }
            }
        }
        for (name, log) in [("Softmax", false), ("LogSoftmax", true)] {
            r[name] = { c in
                let opset = c.opset
                let axisAttr = try c.int("axis", default: opset >= 13 ? -1 : 1)
                let threads = c.options.resolvedThreads
                // The result may be written over a float input handed over (each row is read
                // before it is written, and only as it is written).
                return ClosureOperator.consuming { inputs in
                    var x = try inputs.takeRequired(0)
                    let half: DType? = x.dtype == .float16 || x.dtype == .bfloat16 ? x.dtype : nil
                    if half != nil { x = try x.convertedToFloat32() }
                    guard x.dtype == .float || x.dtype == .double else {
                        throw KerfError.unsupported("\(name) supports float types, got \(x.dtype)")
                    }
                    let axis = try normalizeAxis(axisAttr, rank: x.rank)
                    // Before opset 13 the input is coerced to 2-D [before axis, from axis on].
                    let n = opset >= 13 ? x.shape[axis] : x.shape[axis...].reduce(1, *)
                    let inner = opset >= 13 ? x.shape[(axis + 1)...].reduce(1, *) : 1
                    let outer = x.shape[..<axis].reduce(1, *)
                    if x.dtype == .double {
                        let out = try x.isUniquelyOwned() ? x : Tensor(uninitialized: .double, shape: x.shape)
                        softmax(x.storage.pointer.assumingMemoryBound(to: Double.self), out.storage.pointer.assumingMemoryBound(to: Double.self),
                                outer: outer, n: n, inner: inner, log: log)
                        return [out]
                    }
                    let out = try x.isUniquelyOwned() ? x : Tensor(uninitialized: .float, shape: x.shape)
                    softmax(x.storage.pointer.assumingMemoryBound(to: Float.self), out.storage.pointer.assumingMemoryBound(to: Float.self),
                            outer: outer, n: n, inner: inner, log: log, threads: threads)
                    return [try half.map { try out.convertedFromFloat32(to: $0) } ?? out]
                }
            }
        }
    }
}

/// Throws unless scale, B, mean and var are float tensors of `channels` elements.
func checkBatchNormParameters(_ scale: Tensor, _ bias: Tensor, _ mean: Tensor, _ variance: Tensor, channels c: Int) throws {
    for (t, what) in [(scale, "scale"), (bias, "B"), (mean, "mean"), (variance, "var")] {
        guard t.count == c, t.dtype == .float else {
            throw KerfError.shapeMismatch("BatchNormalization \(what) must be float with \(c) elements, got \(t.dtype)\(t.shape)")
        }
    }
}

/// Batch normalization as y = x * k[c] + shift[c]: k = scale / sqrt(var + epsilon),
/// shift = B - mean * k, per channel.
func batchNormCoefficients(scale: [Float], bias: [Float], mean: [Float], variance: [Float], epsilon: Float) -> (k: [Float], shift: [Float]) {
    let k = scale.indices.map { scale[$0] / (variance[$0] + epsilon).squareRoot() }
    return (k, bias.indices.map { bias[$0] - mean[$0] * k[$0] })
}

/// Batch normalization over axis 1 of x[N, C, ...]. In training mode the batch statistics
/// are used and the updated running mean and variance are returned as extra outputs.
func batchNorm(_ x: Tensor, scale: Tensor, bias: Tensor, mean: Tensor, variance: Tensor,
               epsilon: Float, momentum: Float, training: Bool) throws -> [Tensor] {
    if x.dtype == .double {
        guard !training else { throw KerfError.unsupported("BatchNormalization of double in training mode") }
        return [try doubleBatchNorm(x, scale: scale, bias: bias, mean: mean, variance: variance, epsilon: decimalDouble(epsilon))]
    }
    let x = try float32Input(x, "BatchNormalization")
    guard x.rank >= 2 else { throw KerfError.shapeMismatch("BatchNormalization input must have rank >= 2, got \(x.shape)") }
    let c = x.shape[1], n = x.shape[0], inner = x.shape[2...].reduce(1, *)
    try checkBatchNormParameters(scale, bias, mean, variance, channels: c)
    let xs = x.storage.pointer.assumingMemoryBound(to: Float.self)
    var m = mean.array(of: Float.self), v = variance.array(of: Float.self)
    var runningMean = m, runningVar = v
    if training {
        let count = Float(n * inner)
        for ch in 0..<c {
            var s: Float = 0, s2: Float = 0
            for b in 0..<n { for i in 0..<inner { let e = xs[(b * c + ch) * inner + i]; s += e } }
            let mu = s / count
            for b in 0..<n { for i in 0..<inner { let e = xs[(b * c + ch) * inner + i] - mu; s2 += e * e } }
            m[ch] = mu
            v[ch] = s2 / count
            runningMean[ch] = runningMean[ch] * momentum + mu * (1 - momentum)
            runningVar[ch] = runningVar[ch] * momentum + v[ch] * (1 - momentum)
        }
    }
    let (k, shift) = batchNormCoefficients(scale: scale.array(of: Float.self), bias: bias.array(of: Float.self), mean: m, variance: v,
                                           epsilon: epsilon)
    let out = try Tensor(uninitialized: .float, shape: x.shape)
    let ys = out.storage.pointer.assumingMemoryBound(to: Float.self)
    for b in 0..<n {
        for ch in 0..<c {
            let base = (b * c + ch) * inner
            for i in 0..<inner { ys[base + i] = xs[base + i] * k[ch] + shift[ch] }
        }
    }
    if training {
        return [out, Tensor(shape: [c], values: runningMean), Tensor(shape: [c], values: runningVar)]
    }
    return [out]
}

/// Local response normalization across channels of x[N, C, ...].
func lrn(_ x: Tensor, size: Int, alpha: Float, beta: Float, bias: Float) throws -> Tensor {
    guard x.rank >= 3 else { throw KerfError.shapeMismatch("LRN input must have rank >= 3, got \(x.shape)") }
    let n = x.shape[0], c = x.shape[1], inner = x.shape[2...].reduce(1, *)
    let out = try Tensor(uninitialized: .float, shape: x.shape)
    let xs = x.storage.pointer.assumingMemoryBound(to: Float.self), ys = out.storage.pointer.assumingMemoryBound(to: Float.self)
    let before = (size - 1) / 2, after = size - 1 - before
    for b in 0..<n {
        for ch in 0..<c {
            let lo = Swift.max(0, ch - before), hi = Swift.min(c - 1, ch + after)
            for i in 0..<inner {
                var s: Float = 0
                for k in lo...hi { let e = xs[(b * c + k) * inner + i]; s += e * e }
                let idx = (b * c + ch) * inner + i
                ys[idx] = xs[idx] / powf(bias + alpha / Float(size) * s, beta)
            }
        }
    }
    return out
}
