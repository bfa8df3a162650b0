// Plain functions over weight buffers: which elements magnitude pruning zeroes.

/// The `k`-th smallest value (0-based) of `values`, which it reorders. `k < values.count`.
func kthSmallest(_ values: inout [Float], _ k: Int) -> Float {
    precondition(k >= 0 && k < values.count)
    var lo = 0, hi = values.count - 1
    return values.withUnsafeMutableBufferPointer { v in
        while lo < hi {
            // Median of three as the pivot, then a Hoare partition.
            let mid = lo + (hi - lo) / 2
            if v[mid] < v[lo] { v.swapAt(mid, lo) }
            if v[hi] < v[lo] { v.swapAt(hi, lo) }
            if v[hi] < v[mid] { v.swapAt(hi, mid) }
            let pivot = v[mid]
            var i = lo, j = hi
            while i <= j {
                while v[i] < pivot { i += 1 }
                while v[j] > pivot { j -= 1 }
                if i <= j { v.swapAt(i, j); i += 1; j -= 1 }
            }
            if k <= j { hi = j } else if k >= i { lo = i } else { return v[k] }
        }
        return v[k]
    }
}

/// The magnitude below which `count` of `weights` fall: the count-th smallest |w| (1-based),
/// or -1 when count is 0 (nothing is below it).
func magnitudeThreshold(_ weights: [UnsafeBufferPointer<Float>], count: Int) -> Float {
    if count <= 0 { return -1 }
    var magnitudes: [Float] = []
    magnitudes.reserveCapacity(weights.reduce(0) { $0 + $1.count })
    for w in weights { for x in w { magnitudes.append(abs(x)) } }
    return kthSmallest(&magnitudes, min(count, magnitudes.count) - 1)
}

/// How many elements have |w| < threshold, and how many have |w| == threshold.
func countBelow(_ w: UnsafeBufferPointer<Float>, _ threshold: Float) -> (below: Int, equal: Int) {
    var below = 0, equal = 0
    for x in w {
        let m = abs(x)
        if m < threshold { below += 1 } else if m == threshold { equal += 1 }
    }
    return (below, equal)
}

/// Zeroes exactly `count` elements of `w`: those of smallest magnitude, ties broken by position.
func zeroSmallest(_ w: UnsafeMutableBufferPointer<Float>, count: Int) {
    let k = min(max(count, 0), w.count)
    if k == 0 { return }
    if k == w.count { for i in w.indices { w[i] = 0 }; return }
    let threshold = magnitudeThreshold([UnsafeBufferPointer(w)], count: k)
    var remainingTies = k - countBelow(UnsafeBufferPointer(w), threshold).below
    for i in w.indices {
        let m = abs(w[i])
        if m < threshold {
            w[i] = 0
        } else if m == threshold && remainingTies > 0 {
            w[i] = 0
            remainingTies -= 1
        }
    }
}

/// In every group of `m` consecutive elements along the reduction dimension of `layout`,
/// zeroes all but the `n` of largest magnitude (ties broken deterministically). A shorter
/// final group keeps at most `n` as well.
func keepNOfM(_ w: UnsafeMutableBufferPointer<Float>, layout: ReductionLayout, n: Int, m: Int) {
    precondition(w.count == layout.outer * layout.length * layout.stride)
    var order = [Int](repeating: 0, count: m)
    for o in 0..<layout.outer {
        for inner in 0..<layout.stride {
            let base = o * layout.length * layout.stride + inner
            var start = 0
            while start < layout.length {
                let size = min(m, layout.length - start)
                if size > n {
                    for j in 0..<size { order[j] = base + (start + j) * layout.stride }
                    // Selection sort of the n largest to the front (m is small).
                    for a in 0..<n {
                        var best = a
                        for b in (a + 1)..<size where abs(w[order[b]]) > abs(w[order[best]]) { best = b }
                        order.swapAt(a, best)
                    }
                    for j in n..<size { w[order[j]] = 0 }
                }
                start += m
            }
        }
    }
}
