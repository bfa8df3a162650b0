import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

/// The real range [low, high] an activation is quantized over, from its statistics.
/// The range always contains 0 (so that 0 is exact, as ONNX's zero point requires).
func calibratedRange(_ s: ActivationStatistics, method: CalibrationMethod, activation: ActivationType) -> (low: Float, high: Float) {
    guard s.observed else { return (0, 0) }
    var low = Swift.min(s.min, 0), high = Swift.max(s.max, 0)
    let threshold: Float?
    switch method {
    case .minMax: threshold = nil
    case .percentile(let p): threshold = percentileThreshold(s, percentile: p)
    case .entropy: threshold = entropyThreshold(s, levels: s.min >= 0 ? 255 : 128)
    }
    if let t = threshold, t > 0 {
        low = Swift.max(low, -t)
        high = Swift.min(high, t)
    }
    return (low, high)
}

/// The |x| value below which `percentile` percent of the observations lie (upper bin edge).
func percentileThreshold(_ s: ActivationStatistics, percentile: Double) -> Float? {
    let total = s.counts.reduce(0, +)
    guard total > 0 else { return nil }
    let target = total * percentile / 100
    var seen = 0.0
    for (i, c) in s.counts.enumerated() {
        seen += c
        if seen >= target { return Float(i + 1) * s.binWidth }
    }
    return s.limit
}

/// The clipping threshold of |x| that minimizes KL(P || Q), P the histogram clipped at the
/// threshold (outliers added to the last bin) and Q that histogram quantized to `levels` bins
/// and expanded back. Candidates are every bin edge from `levels` bins up.
func entropyThreshold(_ s: ActivationStatistics, levels: Int) -> Float? {
    let h = s.counts, n = h.count
    guard n > levels, h.reduce(0, +) > 0 else { return nil }
    var best = n, bestDivergence = Double.infinity
    var p = [Double](repeating: 0, count: n), q = [Double](repeating: 0, count: n)
    var suffix = [Double](repeating: 0, count: n + 1)
    for i in stride(from: n - 1, through: 0, by: -1) { suffix[i] = suffix[i + 1] + h[i] }
    for i in levels...n {
        // P: the first i bins, outliers folded into the last.
        for j in 0..<i { p[j] = h[j] }
        p[i - 1] += suffix[i]
        // Q: the first i bins merged into `levels` groups, each group's mass spread evenly over
        // its non-empty bins.
        let perLevel = Double(i) / Double(levels)
        for k in 0..<levels {
            let start = Int((Double(k) * perLevel).rounded(.down))
            let end = k == levels - 1 ? i : Int((Double(k + 1) * perLevel).rounded(.down))
            var mass = 0.0, nonEmpty = 0
            for j in start..<end where h[j] > 0 { mass += h[j]; nonEmpty += 1 }
            for j in start..<end { q[j] = h[j] > 0 ? mass / Double(nonEmpty) : 0 }
        }
        let divergence = klDivergence(p, q, count: i)
        if divergence < bestDivergence {
            bestDivergence = divergence
            best = i
        }
    }
    return Float(best) * s.binWidth
}

/// KL(P || Q) of the first `count` entries, each normalized to sum 1; a bin where P has mass
/// and Q none costs a large constant (as in TensorRT's smoothing).
private func klDivergence(_ p: [Double], _ q: [Double], count: Int) -> Double {
    var sp = 0.0, sq = 0.0
    for j in 0..<count { sp += p[j]; sq += q[j] }
    guard sp > 0, sq > 0 else { return .infinity }
    var d = 0.0
    for j in 0..<count where p[j] > 0 {
        let pj = p[j] / sp
        if q[j] > 0 { d += pj * log(pj / (q[j] / sq)) } else { d += pj * 20 }
    }
    return d
}
