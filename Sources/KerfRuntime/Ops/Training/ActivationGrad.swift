import FoundationEssentials
import KerfCore
import KerfKernels
#if canImport(Glibc)
import Glibc
#endif

/// Which activation's derivative `ActivationGrad` applies, and whether it reads the forward
/// input or output. Conventions at kinks follow PyTorch.
enum ActivationDerivative {
    case relu            // reads Y: dY·(Y > 0)
    case sigmoid         // reads Y: dY·Y·(1 − Y)
    case tanh            // reads Y: dY·(1 − Y²)
    case erf             // reads X: dY·2/√π·exp(−X²)
    case gelu            // reads X: dY·(Φ(X) + X·φ(X))
    case geluTanh        // reads X: the derivative of 0.5·X·(1 + tanh(√(2/π)(X + 0.044715X³)))
    case softplus        // reads X: dY·sigmoid(X)
    case hardSwish       // reads X: 0 below −3, dY·(X/3 + 0.5) up to 3, dY above
    case leakyRelu(Float)    // reads X: dY where X > 0, alpha·dY elsewhere
    case elu(Float)          // reads X: dY where X > 0, dY·alpha·exp(X) elsewhere
    case hardSigmoid(Float, Float)  // reads X: alpha·dY where 0 < alpha·X + beta < 1
    /// Clip: reads X; dY where min ≤ X ≤ max (bounds from attributes alpha/beta or inputs 2, 3).
    case clip(Float, Float)

    init(kind: String, alpha: Float?, beta: Float?) throws {
        switch kind {
        case "relu": self = .relu
        case "sigmoid": self = .sigmoid
        case "tanh": self = .tanh
        case "erf": self = .erf
        case "gelu": self = .gelu
        case "gelu_tanh": self = .geluTanh
        case "softplus": self = .softplus
        case "hardswish": self = .hardSwish
        case "leakyrelu": self = .leakyRelu(alpha ?? 0.01)
        case "elu": self = .elu(alpha ?? 1)
        case "hardsigmoid": self = .hardSigmoid(alpha ?? 0.2, beta ?? 0.5)
        case "clip": self = .clip(alpha ?? -.infinity, beta ?? .infinity)
        default: throw KerfError.invalidModel("ActivationGrad kind '\(kind)' is unknown")
        }
    }
}

/// dX of an activation from dY and the forward value the derivative reads (same shape).
func activationGradient(_ kind: ActivationDerivative, dY: Tensor, value: Tensor, minimum: Tensor?, maximum: Tensor?,
                        threads: Int = 1) throws -> Tensor {
    try requireGradientElement(dY, "ActivationGrad")
    guard dY.shape == value.shape, dY.dtype == value.dtype else {
        throw KerfError.shapeMismatch("ActivationGrad: gradient \(dY.dtype) \(dY.shape) and value \(value.dtype) \(value.shape) differ")
    }
    var kind = kind
    if case .clip(let lo, let hi) = kind {
        kind = .clip(try minimum.map { try scalarBound($0) } ?? lo, try maximum.map { try scalarBound($0) } ?? hi)
    }
    let out = try Tensor(uninitialized: dY.dtype, shape: dY.shape)
    switch dY.dtype {
    case .double: apply(kind, dY, value, out, threads, Double.self)
    default: apply(kind, dY, value, out, threads, Float.self)
    }
    return out
}

private func scalarBound(_ t: Tensor) throws -> Float {
    guard t.count == 1 else { throw KerfError.shapeMismatch("Clip bounds must be scalars") }
    switch t.dtype {
    case .float: return t.withElements(as: Float.self) { $0[0] }
    case .double: return Float(t.withElements(as: Double.self) { $0[0] })
    default: throw KerfError.unsupported("Clip bounds of \(t.dtype)")
    }
}

private func apply<T: GradientElement>(_ kind: ActivationDerivative, _ dY: Tensor, _ value: Tensor, _ out: Tensor, _ threads: Int,
                                       _: T.Type) {
    parallelRanges(dY.count, threads: threads, grain: 1 << 14) { range in apply(kind, dY, value, out, range, T.self) }
}

/// `apply` on the elements `range`.
private func apply<T: GradientElement>(_ kind: ActivationDerivative, _ dY: Tensor, _ value: Tensor, _ out: Tensor,
                                       _ range: Range<Int>, _: T.Type) {
    let g = dY.storage.pointer.assumingMemoryBound(to: T.self)
    let v = value.storage.pointer.assumingMemoryBound(to: T.self)
    let o = out.storage.pointer.assumingMemoryBound(to: T.self)
    switch kind {
    case .relu: for i in range { o[i] = v[i] > 0 ? g[i] : 0 }
    case .sigmoid: for i in range { o[i] = g[i] * v[i] * (1 - v[i]) }
    case .tanh: for i in range { o[i] = g[i] * (1 - v[i] * v[i]) }
    case .leakyRelu(let alpha):
        let a = T(alpha)
        for i in range { o[i] = v[i] > 0 ? g[i] : a * g[i] }
    case .hardSwish:
        for i in range { o[i] = v[i] < -3 ? 0 : (v[i] <= 3 ? g[i] * (v[i] / 3 + 0.5) : g[i]) }
    case .hardSigmoid(let alpha, let beta):
        let a = T(alpha), b = T(beta)
        for i in range {
            let t = a * v[i] + b
            o[i] = t > 0 && t < 1 ? a * g[i] : 0
        }
    case .clip(let lo, let hi):
        let l = T(lo), h = T(hi)
        for i in range { o[i] = v[i] >= l && v[i] <= h ? g[i] : 0 }
    case .erf, .gelu, .geluTanh, .softplus, .elu:
        if T.self == Float.self {
            let gf = UnsafeMutableRawPointer(g).assumingMemoryBound(to: Float.self)
            let vf = UnsafeMutableRawPointer(v).assumingMemoryBound(to: Float.self)
            let of = UnsafeMutableRawPointer(o).assumingMemoryBound(to: Float.self)
            switch kind {  // one loop per kind, so that each vectorizes
            case .erf: for i in range { of[i] = transcendental(.erf, vf[i]) * gf[i] }
            case .gelu: geluGradient(dY: gf + range.lowerBound, x: vf + range.lowerBound, dX: of + range.lowerBound, count: range.count)
            case .geluTanh: for i in range { of[i] = transcendental(.geluTanh, vf[i]) * gf[i] }
            case .softplus: for i in range { of[i] = transcendental(.softplus, vf[i]) * gf[i] }
            default: for i in range { of[i] = transcendental(kind, vf[i]) * gf[i] }
            }
        } else {
            for i in range { o[i] = T(transcendental(kind, Double(v[i])) * Double(g[i])) }
        }
    }
}

/// `transcendental` in float (exact GELU: KerfKernels' `geluGradient`) with KerfKernels' branch-free `fastExp` / `fastErf` (a few ulp from
/// glibc's expf and erff), so that the loop over a tensor vectorizes; tanh(z) = 1 − 2/(e^{2z} + 1).
@inline(__always)
private func transcendental(_ kind: ActivationDerivative, _ x: Float) -> Float {
    switch kind {
    case .erf: return 1.1283791670955126 * fastExp(-x * x)
    case .geluTanh:
        let k: Float = 0.7978845608028654
        let t = 1 - 2 / (fastExp(2 * k * (x + 0.044715 * x * x * x)) + 1)
        return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * k * (1 + 3 * 0.044715 * x * x)
    case .softplus: return 1 / (1 + fastExp(-x))
    case .elu(let alpha): return x > 0 ? 1 : alpha * fastExp(x)
    default: return 1
    }
}

/// The derivative at x of the activations whose derivative needs exp/erf/tanh, in double.
private func transcendental(_ kind: ActivationDerivative, _ x: Double) -> Double {
    switch kind {
    case .erf: return 2 / Double.pi.squareRoot() * exp(-x * x)
    case .gelu:
        let cdf = 0.5 * (1 + Glibc.erf(x / 2.0.squareRoot()))
        let pdf = exp(-0.5 * x * x) / (2 * Double.pi).squareRoot()
        return cdf + x * pdf
    case .geluTanh:
        let k = (2 / Double.pi).squareRoot()
        let inner = k * (x + 0.044715 * x * x * x)
        let t = Glibc.tanh(inner)
        return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * k * (1 + 3 * 0.044715 * x * x)
    case .softplus: return 1 / (1 + exp(-x))
    case .elu(let alpha): return x > 0 ? 1 : Double(alpha) * exp(x)
    default: return 1
    }
}
