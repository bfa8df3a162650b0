import KerfCore
import KerfKernels

// Batch normalization over axis 1 of x[N, C, ...] for training, in float or double (sums in
// double): the training-mode forward with batch statistics, and the gradients of both modes.
// scale, B, mean and var are [C] tensors of x's dtype.

/// `kerf.training.BatchNormalizationTraining(X, scale, B, running_mean, running_var)` (attributes
/// epsilon, momentum as ONNX's BatchNormalization) as PyTorch's training mode computes it:
/// Y normalized with the batch's mean and biased variance; the running statistics updated as
/// running·momentum + batch·(1 − momentum), the variance's from the unbiased batch variance.
/// Returns [Y, saved mean, saved 1/√(var + epsilon), new running mean, new running var].
/// Channels run in parallel on up to `threads` threads.
func batchNormalizationTraining(_ x: Tensor, scale: Tensor, bias: Tensor, runningMean: Tensor, runningVar: Tensor,
                                epsilon: Double, momentum: Double, threads: Int) throws -> [Tensor] {
    let (n, c, inner) = try batchNormShape(x, [scale, bias, runningMean, runningVar], "BatchNormalizationTraining")
    guard n * inner > 1 else {
        throw KerfError.invalidArgument("BatchNormalizationTraining: a batch of \(x.shape) has \(n * inner) value(s) per channel; training mode needs more than one")
    }
    let y = try Tensor(uninitialized: x.dtype, shape: x.shape)
    let stats = try (0..<4).map { _ in try Tensor(uninitialized: x.dtype, shape: [c]) }
    let k = BatchNormKernel(n: n, c: c, inner: inner, epsilon: epsilon)
    switch x.dtype {
    case .double: k.forwardTraining(x, scale, bias, runningMean, runningVar, y, stats, momentum, threads, Double.self)
    default: k.forwardTraining(x, scale, bias, runningMean, runningVar, y, stats, momentum, threads, Float.self)
    }
    return [y] + stats
}

/// The gradients [dX, dScale, dB] of batch normalization Y = (X − mean)·invStd·scale + B.
/// With `batchStatistics` (training mode) mean and invStd are the batch's, functions of X
/// (`mean`, `invStd` the saved ones; nil: recomputed from X); otherwise (inference mode) they
/// are constants: `mean` the running mean and `variance` the running variance.
func batchNormalizationGradient(dY: Tensor, x: Tensor, scale: Tensor, mean: Tensor?, spread: Tensor?, spreadIsInvStd: Bool,
                                batchStatistics: Bool, epsilon: Double, threads: Int) throws -> [Tensor] {
    let op = batchStatistics ? "BatchNormalizationTrainingGrad" : "BatchNormalizationGrad"
    guard dY.shape == x.shape, dY.dtype == x.dtype else {
        throw KerfError.shapeMismatch("\(op): dY \(dY.dtype) \(dY.shape) and X \(x.dtype) \(x.shape) differ")
    }
    guard (mean == nil) == (spread == nil) else { throw KerfError.invalidModel("\(op): give both statistics or neither") }
    let (n, c, inner) = try batchNormShape(x, [scale] + [mean, spread].compactMap { $0 }, op)
    let dX = try Tensor(uninitialized: x.dtype, shape: x.shape)
    let dScale = try Tensor(uninitialized: x.dtype, shape: [c]), dB = try Tensor(uninitialized: x.dtype, shape: [c])
    let k = BatchNormKernel(n: n, c: c, inner: inner, epsilon: epsilon)
    switch x.dtype {
    case .double: k.backward(dY, x, scale, mean, spread, spreadIsInvStd, batchStatistics, [dX, dScale, dB], threads, Double.self)
    default: k.backward(dY, x, scale, mean, spread, spreadIsInvStd, batchStatistics, [dX, dScale, dB], threads, Float.self)
    }
    return [dX, dScale, dB]
}

/// Inference-mode BatchNormalization of a double x (the standard op's double path).
func doubleBatchNorm(_ x: Tensor, scale: Tensor, bias: Tensor, mean: Tensor, variance: Tensor, epsilon: Double) throws -> Tensor {
    let (n, c, inner) = try batchNormShape(x, [scale, bias, mean, variance], "BatchNormalization")
    let y = try Tensor(uninitialized: .double, shape: x.shape)
    let xs = x.storage.pointer.assumingMemoryBound(to: Double.self), ys = y.storage.pointer.assumingMemoryBound(to: Double.self)
    let w = scale.array(of: Double.self), b = bias.array(of: Double.self), m = mean.array(of: Double.self), v = variance.array(of: Double.self)
    for ch in 0..<c {
        let k = w[ch] / (v[ch] + epsilon).squareRoot(), shift = b[ch] - m[ch] * k
        for i in 0..<n {
            let base = (i * c + ch) * inner
            for j in 0..<inner { ys[base + j] = xs[base + j] * k + shift }
        }
    }
    return y
}

/// The double a float attribute was written as: its shortest decimal form read back (0.8 as
/// float is 0.800000011920929; PyTorch, which exported it, computes with 0.8).
func decimalDouble(_ f: Float) -> Double { Double(f.description) ?? Double(f) }

/// (N, C, inner) of x[N, C, ...], after checking that x is float or double of rank >= 2 and
/// each of `perChannel` has C elements of x's dtype.
private func batchNormShape(_ x: Tensor, _ perChannel: [Tensor], _ op: String) throws -> (Int, Int, Int) {
    try requireGradientElement(x, op)
    guard x.rank >= 2 else { throw KerfError.shapeMismatch("\(op): input must have rank >= 2, got \(x.shape)") }
    let c = x.shape[1]
    for t in perChannel where t.count != c || t.dtype != x.dtype {
        throw KerfError.shapeMismatch("\(op): per-channel inputs must be \(x.dtype) with \(c) elements, got \(t.dtype)\(t.shape)")
    }
    return (x.shape[0], c, x.shape[2...].reduce(1, *))
}

/// The loops over x[n, c, inner], one channel per task.
private struct BatchNormKernel {
    let n: Int, c: Int, inner: Int, epsilon: Double

    /// Calls body(k, base) for each of the channel's n blocks of `inner` elements.
    @inline(__always)
    func blocks(_ ch: Int, _ body: (Int) -> Void) {
        for i in 0..<n { body((i * c + ch) * inner) }
    }

    /// Mean and biased variance of channel ch of x (two passes).
    @inline(__always)
    func moments<T: GradientElement>(_ xs: UnsafeMutablePointer<T>, _ ch: Int) -> (Double, Double) {
        let count = Double(n * inner)
        var sum = 0.0
        blocks(ch) { base in for j in 0..<inner { sum += Double(xs[base + j]) } }
        let mean = sum / count
        var squares = 0.0
        blocks(ch) { base in for j in 0..<inner { let d = Double(xs[base + j]) - mean; squares += d * d } }
        return (mean, squares / count)
    }

    func forwardTraining<T: GradientElement>(_ x: Tensor, _ scale: Tensor, _ bias: Tensor, _ runningMean: Tensor, _ runningVar: Tensor,
                                             _ y: Tensor, _ stats: [Tensor], _ momentum: Double, _ threads: Int, _: T.Type) {
        let xs = x.storage.pointer.assumingMemoryBound(to: T.self), ys = y.storage.pointer.assumingMemoryBound(to: T.self)
        let w = scale.storage.pointer.assumingMemoryBound(to: T.self), b = bias.storage.pointer.assumingMemoryBound(to: T.self)
        let rm = runningMean.storage.pointer.assumingMemoryBound(to: T.self), rv = runningVar.storage.pointer.assumingMemoryBound(to: T.self)
        let out = stats.map { $0.storage.pointer.assumingMemoryBound(to: T.self) }
        let count = Double(n * inner)
        teamRanges(c, grain: 1) { channels in for ch in channels {
            let (mean, variance) = moments(xs, ch)
            let invStd = 1 / (variance + epsilon).squareRoot()
            let kt = T(Double(w[ch]) * invStd), mt = T(mean), bt = b[ch]
            blocks(ch) { base in for j in 0..<inner { ys[base + j] = (xs[base + j] - mt) * kt + bt } }
            out[0][ch] = T(mean)
            out[1][ch] = T(invStd)
            out[2][ch] = T(Double(rm[ch]) * momentum + mean * (1 - momentum))
            out[3][ch] = T(Double(rv[ch]) * momentum + variance * count / (count - 1) * (1 - momentum))
        } }
    }

    func backward<T: GradientElement>(_ dY: Tensor, _ x: Tensor, _ scale: Tensor, _ mean: Tensor?, _ spread: Tensor?, _ spreadIsInvStd: Bool,
                                      _ batchStatistics: Bool, _ outs: [Tensor], _ threads: Int, _: T.Type) {
        let g = dY.storage.pointer.assumingMemoryBound(to: T.self), xs = x.storage.pointer.assumingMemoryBound(to: T.self)
        let w = scale.storage.pointer.assumingMemoryBound(to: T.self)
        let m = mean.map { $0.storage.pointer.assumingMemoryBound(to: T.self) }
        let s = spread.map { $0.storage.pointer.assumingMemoryBound(to: T.self) }
        let dx = outs[0].storage.pointer.assumingMemoryBound(to: T.self)
        let dw = outs[1].storage.pointer.assumingMemoryBound(to: T.self), db = outs[2].storage.pointer.assumingMemoryBound(to: T.self)
        let count = Double(n * inner)
        teamRanges(c, grain: 1) { channels in for ch in channels {
            let mu: Double, invStd: Double
            if let m, let s {
                mu = Double(m[ch])
                invStd = spreadIsInvStd ? Double(s[ch]) : 1 / (Double(s[ch]) + epsilon).squareRoot()
            } else {
                let (mean, variance) = moments(xs, ch)
                mu = mean
                invStd = 1 / (variance + epsilon).squareRoot()
            }
            var sumG = 0.0, sumGX = 0.0
            blocks(ch) { base in
                for j in 0..<inner {
                    let gv = Double(g[base + j])
                    sumG += gv
                    sumGX += gv * (Double(xs[base + j]) - mu)
                }
            }
            let sumGXhat = sumGX * invStd
            dw[ch] = T(sumGXhat)
            db[ch] = T(sumG)
            let k = Double(w[ch]) * invStd
            if batchStatistics {
                // dX = k·(dY − mean(dY) − xhat·mean(dY·xhat))
                let meanG = sumG / count, c1 = sumGXhat / count * invStd
                let a = T(k), b0 = T(k * meanG), b1 = T(k * c1), mt = T(mu)
                blocks(ch) { base in for j in 0..<inner { dx[base + j] = a * g[base + j] - b0 - b1 * (xs[base + j] - mt) } }
            } else {
                let a = T(k)
                blocks(ch) { base in for j in 0..<inner { dx[base + j] = a * g[base + j] } }
            }
        } }
    }
}
