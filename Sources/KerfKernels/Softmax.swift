#if canImport(Glibc)
import Glibc
#endif

/// Softmax along the middle axis of x viewed as [outer, n, inner]: for each (o, i) the n
/// elements at (o * n + j) * inner + i are normalized.
/// With `log`, y = log-softmax. Max-subtracted for stability; x and y may alias.
public func softmax(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, outer: Int, n: Int, inner: Int, log: Bool) {
    for o in 0..<outer {
        for i in 0..<inner {
            let base = o * n * inner + i
            var m = -Float.infinity
            for j in 0..<n { m = max(m, x[base + j * inner]) }
            var sum: Float = 0
            for j in 0..<n { sum += fastExp(x[base + j * inner] - m) }
            if log {
                let l = logf(sum)
                for j in 0..<n { y[base + j * inner] = x[base + j * inner] - m - l }
            } else {
                let scale = 1 / sum
                for j in 0..<n { y[base + j * inner] = fastExp(x[base + j * inner] - m) * scale }
            }
        }
    }
}
