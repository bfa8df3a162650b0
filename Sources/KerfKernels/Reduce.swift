/// Reduces `x` viewed as [outer, n, inner] along the middle axis into `out` viewed as
/// [outer, inner]: out[o, i] = combine(...combine(initial, x[o, 0, i])..., x[o, n-1, i]).
/// With n == 0 every output is `initial`. `x` holds outer * n * inner elements.
@inlinable
public func reduceMiddle<T>(_ x: UnsafePointer<T>, outer: Int, n: Int, inner: Int,
                            _ out: UnsafeMutablePointer<T>, initial: T, _ combine: (T, T) -> T) {
    if inner == 1 {
        for o in 0..<outer {
            let row = x + o * n
            var acc = initial
            for j in 0..<n { acc = combine(acc, row[j]) }
            out[o] = acc
        }
        return
    }
    for o in 0..<outer {
        let dst = out + o * inner
        for i in 0..<inner { dst[i] = initial }
        for j in 0..<n {
            let src = x + (o * n + j) * inner
            for i in 0..<inner { dst[i] = combine(dst[i], src[i]) }
        }
    }
}

/// Sum of x[0..<n] in four independent eight-lane accumulators (the additions of one chain
/// would wait on each other), then the tail.
@inlinable
public func rowSum(_ x: UnsafePointer<Float>, count n: Int) -> Float {
    var a0 = SIMD8<Float>(), a1 = a0, a2 = a0, a3 = a0
    var j = 0
    while j + 32 <= n {
        let p = UnsafeRawPointer(x + j)
        a0 += p.loadUnaligned(as: SIMD8<Float>.self)
        a1 += p.loadUnaligned(fromByteOffset: 32, as: SIMD8<Float>.self)
        a2 += p.loadUnaligned(fromByteOffset: 64, as: SIMD8<Float>.self)
        a3 += p.loadUnaligned(fromByteOffset: 96, as: SIMD8<Float>.self)
        j += 32
    }
    while j + 8 <= n {
        a0 += UnsafeRawPointer(x + j).loadUnaligned(as: SIMD8<Float>.self)
        j += 8
    }
    var sum = ((a0 + a1) + (a2 + a3)).sum()
    while j < n { sum += x[j]; j += 1 }
    return sum
}

/// Groups the dims of a shape into runs of reduced / kept dims (size-1 dims dropped), so that
/// a reduction over any axis set becomes a few [outer, n, inner] reductions.
/// Returns (size, reduced) per run, outermost first.
public func reductionRuns(shape: [Int], reduced: Set<Int>) -> [(size: Int, reduced: Bool)] {
    var runs: [(size: Int, reduced: Bool)] = []
    for (d, size) in shape.enumerated() where size != 1 {
        let r = reduced.contains(d)
        if let last = runs.last, last.reduced == r {
            runs[runs.count - 1].size = last.size * size
        } else {
            runs.append((size, r))
        }
    }
    return runs
}
