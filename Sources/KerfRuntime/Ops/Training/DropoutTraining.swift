import KerfCore
import KerfKernels

// Dropout in training mode: a seeded Bernoulli mask, and its gradient.
//
// The mask is a function of (seed, element index) only, a counter-based hash (splitmix64), so
// it does not depend on the thread count and the same seed gives the same mask. Kept elements
// are scaled by 1 / (1 − ratio), as PyTorch's training mode does.

/// `kerf.training.DropoutTraining(X, ratio, seed) -> Y, mask`: Y = X·mask / (1 − ratio), mask
/// (bool, X's shape) true where an element is kept, with probability 1 − ratio. `ratio` in
/// [0, 1] (1: everything dropped, Y zeros). The mask's stream is `seed` mixed with `stream`
/// (the node's seed attribute), so that several Dropouts fed one step seed draw different masks.
func dropoutTraining(_ x: Tensor, ratio: Double, seed: UInt64, stream: UInt64, threads: Int) throws -> [Tensor] {
    try requireGradientElement(x, "DropoutTraining")
    try checkRatio(ratio)
    let y = try Tensor(uninitialized: x.dtype, shape: x.shape), mask = try Tensor(uninitialized: .bool, shape: x.shape)
    let key = mix(seed ^ mix(stream &+ 0x5851_F42D_4C95_7F2D))
    // Kept when the hash's top 32 bits are at least ratio·2³².
    let threshold = UInt64((ratio * 4_294_967_296).rounded(.up))
    let scale = ratio >= 1 ? 0 : 1 / (1 - ratio)
    let m = mask.storage.pointer.assumingMemoryBound(to: Bool.self)
    func run<T: GradientElement>(_: T.Type) {
        let xs = x.storage.pointer.assumingMemoryBound(to: T.self), ys = y.storage.pointer.assumingMemoryBound(to: T.self)
        let s = T(scale)
        teamRanges(x.count, grain: 1 << 16) { range in
            for i in range {
                let keep = mix(key &+ UInt64(i) &* 0x9E37_79B9_7F4A_7C15) >> 32 >= threshold
                m[i] = keep
                ys[i] = keep ? xs[i] * s : 0
            }
        }
    }
    if x.dtype == .double { run(Double.self) } else { run(Float.self) }
    return [y, mask]
}

/// `kerf.training.DropoutGrad(dY, mask, ratio) -> dX` = dY·mask / (1 − ratio).
func dropoutGradient(dY: Tensor, mask: Tensor, ratio: Double, threads: Int) throws -> Tensor {
    try requireGradientElement(dY, "DropoutGrad")
    try checkRatio(ratio)
    guard mask.dtype == .bool, mask.shape == dY.shape else {
        throw KerfError.shapeMismatch("DropoutGrad: mask \(mask.dtype) \(mask.shape) does not fit dY \(dY.shape)")
    }
    let dX = try Tensor(uninitialized: dY.dtype, shape: dY.shape)
    let scale = ratio >= 1 ? 0 : 1 / (1 - ratio)
    let m = mask.storage.pointer.assumingMemoryBound(to: Bool.self)
    func run<T: GradientElement>(_: T.Type) {
        let g = dY.storage.pointer.assumingMemoryBound(to: T.self), out = dX.storage.pointer.assumingMemoryBound(to: T.self)
        let s = T(scale)
        teamRanges(dY.count, grain: 1 << 16) { range in
            for i in range { out[i] = m[i] ? g[i] * s : 0 }
        }
    }
    if dY.dtype == .double { run(Double.self) } else { run(Float.self) }
    return dX
}

/// The dropout ratio of an optional scalar input, else `attribute`.
func dropoutRatio(_ input: Tensor?, attribute: Double) throws -> Double {
    guard let input else { return attribute }
    guard input.count == 1 else { throw KerfError.shapeMismatch("Dropout ratio must be a scalar, got \(input.shape)") }
    switch input.dtype {
    case .float: return decimalDouble(input.withElements(as: Float.self) { $0[0] })
    case .double: return input.withElements(as: Double.self) { $0[0] }
    case .float16: return decimalDouble(Float(input.withElements(as: Float16.self) { $0[0] }))
    default: throw KerfError.unsupported("Dropout ratio of \(input.dtype)")
    }
}

/// The step seed of an optional int64 / int32 scalar input (0 when absent).
func dropoutSeed(_ input: Tensor?) throws -> UInt64 {
    guard let input else { return 0 }
    guard input.count == 1 else { throw KerfError.shapeMismatch("DropoutTraining seed must be a scalar, got \(input.shape)") }
    switch input.dtype {
    case .int64: return UInt64(bitPattern: input.withElements(as: Int64.self) { $0[0] })
    case .int32: return UInt64(bitPattern: Int64(input.withElements(as: Int32.self) { $0[0] }))
    default: throw KerfError.unsupported("DropoutTraining seed of \(input.dtype) (int64 or int32)")
    }
}

private func checkRatio(_ ratio: Double) throws {
    guard ratio >= 0, ratio <= 1 else { throw KerfError.invalidArgument("Dropout ratio \(ratio) is not in [0, 1]") }
}

/// splitmix64's finalizer: a bijective 64-bit mix.
@inline(__always)
private func mix(_ z0: UInt64) -> UInt64 {
    var z = z0 &+ 0x9E37_79B9_7F4A_7C15
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
}
