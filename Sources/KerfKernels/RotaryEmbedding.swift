/// Rotary position embedding of one head's row x[d] into y[d] (may alias): the first
/// 2·half elements are rotated by the angles whose cosines and sines are cos[half], sin[half],
/// the rest copied. Pair m is (x[m], x[m + half]) or, `interleaved`, (x[2m], x[2m + 1]):
///
///     (a, b) -> (a·cos[m] − b·sin[m], a·sin[m] + b·cos[m])
public func rotaryEmbeddingRow(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, d: Int, half: Int,
                               cos: UnsafePointer<Float>, sin: UnsafePointer<Float>, interleaved: Bool) {
    for m in 0..<half {
        let (i, j) = interleaved ? (2 * m, 2 * m + 1) : (m, m + half)
        let a = x[i], b = x[j]
        y[i] = a * cos[m] - b * sin[m]
        y[j] = a * sin[m] + b * cos[m]
    }
    if d > 2 * half && UnsafePointer(y) != x { (y + 2 * half).update(from: x + 2 * half, count: d - 2 * half) }
}
