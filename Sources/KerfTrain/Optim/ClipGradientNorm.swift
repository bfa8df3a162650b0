import KerfCore
import KerfKernels
#if canImport(Glibc)
import Glibc
#endif

/// torch.nn.utils.clip_grad_norm_: scales `gradients` in place so that their joint norm is at
/// most about `maxNorm`, and returns that norm before scaling.
///
/// The norm of order `normType` (> 0, `.infinity` for the largest magnitude) is taken of each
/// buffer, rounded to float32 as torch keeps it, then of those norms (the norm of all elements
/// as one vector). Every element is multiplied by the float32
/// `min(maxNorm / (totalNorm + 1e-6), 1)`, also when that is 1, as torch does; a NaN or
/// infinite norm makes it NaN or 0 unless `errorIfNonfinite`, which throws instead. No buffers:
/// returns 0 and scales nothing.
///
/// Sums are taken in float64 over fixed blocks, so the result does not depend on `threads`;
/// torch sums in float32 lanes (as many as the CPU's vectors hold), so its norm of a large
/// tensor may differ from this one in the last float32 bits. Throws `.invalidArgument` for a
/// negative or NaN `maxNorm`, a `normType` that is not > 0, or a non-finite norm with
/// `errorIfNonfinite`; gradients are unchanged then.
@discardableResult
public func clipGradientNorm(_ gradients: [UnsafeMutableBufferPointer<Float>], maxNorm: Double, normType: Double = 2,
                             errorIfNonfinite: Bool = false, threads: Int = 1) throws -> Double {
    guard maxNorm >= 0 else { throw KerfError.invalidArgument("clipGradientNorm: maxNorm must be >= 0, got \(maxNorm)") }
    guard normType > 0 else { throw KerfError.invalidArgument("clipGradientNorm: normType must be > 0 (or infinity), got \(normType)") }
    if gradients.isEmpty { return 0 }
    let threads = max(1, threads)
    let norms = gradients.map { Float(vectorNorm(UnsafeBufferPointer($0), order: normType, threads: threads)) }
    let total = Float(combineNorms(norms.map(Double.init), order: normType))
    if errorIfNonfinite && !total.isFinite {
        throw KerfError.invalidArgument("clipGradientNorm: the total norm of order \(normType) of the gradients is \(total), so they cannot be clipped")
    }
    let coefficient = Float(maxNorm) / (total + Float(1e-6))
    let clamped = coefficient.isNaN ? coefficient : min(coefficient, 1)
    let factor = Lanes(repeating: clamped)
    for gradient in gradients {
        guard let g = gradient.baseAddress else { continue }
        forEachRange(gradient.count, threads: threads) { range in
            forEachChunk(range) { i, n in storeLanes(loadLanes(g + i, n) * factor, g + i, n) }
        }
    }
    return Double(total)
}

/// Elements per block of `vectorNorm`'s partial sums.
private let normBlock = 1 << 16

/// The norm of order `order` (> 0 or infinity) of `x`, in float64: partial results of fixed
/// blocks (on up to `threads` threads) combined in order.
func vectorNorm(_ x: UnsafeBufferPointer<Float>, order: Double, threads: Int) -> Double {
    guard let base = x.baseAddress, x.count > 0 else { return 0 }
    let blocks = (x.count + normBlock - 1) / normBlock
    var partials = [Double](repeating: 0, count: blocks)
    partials.withUnsafeMutableBufferPointer { partials in
        guard let out = partials.baseAddress else { return }
        teamRanges(blocks, grain: 1) { range in
            for b in range {
                let start = b * normBlock, n = min(normBlock, x.count - start)
                out[b] = blockPartial(base + start, n, order: order)
            }
        }
    }
    if order == .infinity { return maxPropagatingNaN(partials) }
    let sum = partials.reduce(0, +)
    if order == 2 { return sum.squareRoot() }
    if order == 1 { return sum }
    return pow(sum, 1 / order)
}

/// The norm of order `order` of the norms `norms` (torch's norm of the stacked norms).
func combineNorms(_ norms: [Double], order: Double) -> Double {
    if order == .infinity { return maxPropagatingNaN(norms) }
    if order == 2 { return norms.reduce(0) { $0 + $1 * $1 }.squareRoot() }
    if order == 1 { return norms.reduce(0, +) }
    return pow(norms.reduce(0) { $0 + pow($1, order) }, 1 / order)
}

/// The largest value, NaN when any is NaN, 0 for none.
private func maxPropagatingNaN(_ values: [Double]) -> Double {
    var m = 0.0
    for v in values {
        if v.isNaN { return v }
        m = max(m, v)
    }
    return m
}

/// Over x[0..<n]: the sum of |x|^order, or for infinity the largest |x| (NaN when any is NaN).
private func blockPartial(_ x: UnsafePointer<Float>, _ n: Int, order: Double) -> Double {
    typealias D = SIMD8<Double>
    if order == .infinity {
        var m = Lanes(), nan = false
        forEachChunk(0..<n) { i, k in
            let a = loadLanes(x + i, k)
            nan = nan || any(a .!= a)
            m = pointwiseMax(m, pointwiseMax(a, -a))
        }
        return nan ? .nan : Double(m.max())
    }
    if order == 2 {
        var s = D()
        forEachChunk(0..<n) { i, k in
            let d = D(loadLanes(x + i, k))
            s.addProduct(d, d)
        }
        return s.sum()
    }
    if order == 1 {
        var s = D()
        forEachChunk(0..<n) { i, k in
            let d = D(loadLanes(x + i, k))
            s += pointwiseMax(d, -d)
        }
        return s.sum()
    }
    var s = 0.0
    for i in 0..<n { s += pow(Double(abs(x[i])), order) }
    return s
}
