/// Interpolates along one axis of a dense tensor viewed as [outer, inDim, inner]:
/// out[o, j, i] = sum over t < taps of weights[j * taps + t] * in[o, indices[j * taps + t], i].
/// Every index must lie in 0..<inDim; zero weights are skipped.
@inlinable
public func resizeAxis<T: BinaryFloatingPoint>(_ input: UnsafePointer<T>, outer: Int, inDim: Int, inner: Int,
                                               outDim: Int, taps: Int, indices: [Int], weights: [T],
                                               output: UnsafeMutablePointer<T>) {
    indices.withUnsafeBufferPointer { idx in
        weights.withUnsafeBufferPointer { w in
            for o in 0..<outer {
                let src = input + o * inDim * inner
                let dst = output + o * outDim * inner
                for j in 0..<outDim {
                    let row = dst + j * inner
                    row.update(repeating: 0, count: inner)
                    for t in 0..<taps {
                        let weight = w[j * taps + t]
                        if weight == 0 { continue }
                        let s = src + idx[j * taps + t] * inner
                        if weight == 1 && taps == 1 {
                            row.update(from: s, count: inner)
                        } else {
                            for i in 0..<inner { row[i] += weight * s[i] }
                        }
                    }
                }
            }
        }
    }
}
