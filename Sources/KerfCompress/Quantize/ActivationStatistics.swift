/// Streaming statistics of one activation tensor: min, max and a histogram of |x| over
/// [0, limit) whose range doubles (merging bin pairs, exactly) when a value reaches it. The
/// first limit is the power of two just above the first batch's max |x|, so every value falls
/// strictly inside the range and the result equals a one-shot histogram over the final range.
/// Memory is `bins` counts, whatever the number of batches.
struct ActivationStatistics {
    private(set) var min = Float.infinity
    private(set) var max = -Float.infinity
    /// counts[i] holds |x| in [i, i + 1) * limit / bins.
    private(set) var counts: [Double]
    private(set) var limit: Float = 0
    private(set) var nonFinite = 0

    /// `bins` must be even; nil skips the histogram (MinMax calibration).
    init(bins: Int?) {
        counts = bins.map { [Double](repeating: 0, count: $0) } ?? []
    }

    var observed: Bool { min <= max }
    var binWidth: Float { counts.isEmpty ? 0 : limit / Float(counts.count) }

    mutating func add(_ values: UnsafeBufferPointer<Float>) {
        var lo = min, hi = max, bad = 0
        for v in values {
            if v.isFinite { lo = Swift.min(lo, v); hi = Swift.max(hi, v) } else { bad += 1 }
        }
        min = lo
        max = hi
        nonFinite += bad
        guard !counts.isEmpty, observed else { return }
        let absMax = Swift.max(abs(lo), abs(hi))
        if limit == 0 && absMax > 0 {
            limit = Float(sign: .plus, exponent: absMax.exponent + 1, significand: 1)
        }
        while limit > 0 && absMax >= limit { doubleRange() }
        guard limit > 0 else { return }
        let n = counts.count, perUnit = Float(n) / limit
        counts.withUnsafeMutableBufferPointer { c in
            for v in values where v.isFinite {
                c[Swift.min(Int(abs(v) * perUnit), n - 1)] += 1
            }
        }
    }

    /// Doubles `limit`: bins 2i and 2i + 1 become bin i.
    private mutating func doubleRange() {
        let n = counts.count
        for i in 0..<(n / 2) { counts[i] = counts[2 * i] + counts[2 * i + 1] }
        for i in (n / 2)..<n { counts[i] = 0 }
        limit *= 2
    }
}
