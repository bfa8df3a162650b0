#if canImport(Glibc)
import Glibc
#endif

/// The constants of one Adam step (`Adam` states the rule): the float64 scalars computed as
/// Python does, then cast to float32 as torch's tensor ops cast them.
struct AdamStepConstants {
    enum Decay {
        case none
        /// g += weightDecay * p (float32 weightDecay).
        case l2(Float)
        /// p *= 1 - lr * weightDecay (the factor in float32).
        case decoupled(Float)
    }
    var maximize: Bool
    var decay: Decay
    /// 1 - beta1: the weight of torch's lerp.
    var lerpWeight: Float
    var beta2: Float
    /// 1 - beta2.
    var squareShare: Float
    /// sqrt(1 - beta2^step).
    var biasCorrection2Sqrt: Float
    var eps: Float
    /// -lr / (1 - beta1^step).
    var negativeStepSize: Float
    var amsgrad: Bool

    /// `step` is the step being taken (1 for the first).
    init(_ options: Adam, learningRate lr: Double, weightDecay: Double, beta1: Double, step: Int) {
        maximize = options.maximize
        if weightDecay == 0 {
            decay = .none
        } else if options.decoupledWeightDecay {
            decay = .decoupled(Float(1 - lr * weightDecay))
        } else {
            decay = .l2(Float(weightDecay))
        }
        lerpWeight = Float(1 - beta1)
        beta2 = Float(options.beta2)
        squareShare = Float(1 - options.beta2)
        let t = Double(step)
        let biasCorrection1 = 1 - pow(beta1, t)
        let biasCorrection2 = 1 - pow(options.beta2, t)
        biasCorrection2Sqrt = Float(pow(biasCorrection2, 0.5))
        eps = Float(options.eps)
        negativeStepSize = Float(-(lr / biasCorrection1))
        amsgrad = options.amsgrad
    }
}

/// One Adam step of `count` elements of `parameter` (updated in place) from `gradient`,
/// updating the moments `expAvg`, `expAvgSq` and, with amsgrad, `maxExpAvgSq` (count
/// elements each). Each element is computed as torch's CPU kernels do: lerp, addcmul and
/// `a + alpha * b` as fused multiply-adds, addcdiv as (value * m) / denom added. (torch takes
/// the square root with MKL, which is not always correctly rounded: its denominators may
/// differ from these by one unit in the last place.)
func adamStep(parameter: UnsafeMutablePointer<Float>, gradient: UnsafePointer<Float>,
              expAvg: UnsafeMutablePointer<Float>, expAvgSq: UnsafeMutablePointer<Float>,
              maxExpAvgSq: UnsafeMutablePointer<Float>?, count: Int,
              constants c: AdamStepConstants, threads: Int) {
    forEachRange(count, threads: threads) { range in
        if let maxExpAvgSq {
            adamRange(range, parameter, gradient, expAvg, expAvgSq, maxExpAvgSq, c, amsgrad: true)
        } else {
            adamRange(range, parameter, gradient, expAvg, expAvgSq, expAvgSq, c, amsgrad: false)
        }
    }
}

/// `adamStep` over `range` (`amsgrad` is a constant at each call: the loop has no branch on it).
@inline(__always)
private func adamRange(_ range: Range<Int>, _ parameter: UnsafeMutablePointer<Float>, _ gradient: UnsafePointer<Float>,
                       _ expAvg: UnsafeMutablePointer<Float>, _ expAvgSq: UnsafeMutablePointer<Float>,
                       _ maxExpAvgSq: UnsafeMutablePointer<Float>, _ c: AdamStepConstants, amsgrad: Bool) {
    var l2: Float = 0, factor: Float = 1, addsL2 = false, scales = false
    switch c.decay {
    case .none: break
    case .l2(let wd): (l2, addsL2) = (wd, true)
    case .decoupled(let f): (factor, scales) = (f, true)
    }
    let negate = c.maximize
    // torch's lerp_vec: fmadd(coeff, end - start, base), coeff = w and base = start when
    // |w| < 0.5, else coeff = w - 1 and base = end.
    let small = abs(c.lerpWeight) < 0.5
    let coefficient = Lanes(repeating: small ? c.lerpWeight : c.lerpWeight - 1)
    let wd = Lanes(repeating: l2), decay = Lanes(repeating: factor)
    let beta2 = Lanes(repeating: c.beta2), squareShare = Lanes(repeating: c.squareShare)
    let correction = Lanes(repeating: c.biasCorrection2Sqrt), eps = Lanes(repeating: c.eps)
    let negativeStepSize = Lanes(repeating: c.negativeStepSize)
    forEachChunk(range) { i, n in
        var p = loadLanes(parameter + i, n)
        var g = loadLanes(gradient + i, n)
        if negate { g = -g }
        if addsL2 { g = g.addingProduct(p, wd) }
        if scales { p *= decay }
        let m0 = loadLanes(expAvg + i, n)
        let m = (small ? m0 : g).addingProduct(coefficient, g - m0)
        storeLanes(m, expAvg + i, n)
        let v = (loadLanes(expAvgSq + i, n) * beta2).addingProduct(squareShare * g, g)
        storeLanes(v, expAvgSq + i, n)
        var normalizer = v
        if amsgrad {
            let previous = loadLanes(maxExpAvgSq + i, n)
            // torch.maximum: NaN wins.
            normalizer = previous.replacing(with: v, where: previous .< v .| v .!= v)
            storeLanes(normalizer, maxExpAvgSq + i, n)
        }
        let denominator = squareRoot(normalizer) / correction + eps
        p += negativeStepSize * m / denominator
        storeLanes(p, parameter + i, n)
    }
}
