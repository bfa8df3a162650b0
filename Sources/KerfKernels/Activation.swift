#if canImport(Glibc)
import Glibc
#endif

/// An elementwise activation applied in place to a GEMM or convolution output (an epilogue),
/// so that a fused Conv/Gemm/MatMul + activation writes its result once.
public enum Activation: Equatable, Sendable {
    case none
    case relu
    case leakyRelu(alpha: Float)
    case clip(min: Float, max: Float)
    case sigmoid
    case tanh
    /// GELU, exact form (`gelu`, FastMath.swift).
    case gelu

    /// Applies the activation to `count` floats at `x`.
    public func apply(_ x: UnsafeMutablePointer<Float>, count: Int) {
        switch self {
        case .none:
            return
        case .relu:
            for i in 0..<count where !(x[i] > 0) && !x[i].isNaN { x[i] = 0 }
        case .leakyRelu(let alpha):
            for i in 0..<count where x[i] < 0 { x[i] *= alpha }
        case .clip(let lo, let hi):
            for i in 0..<count { x[i] = x[i] < lo ? lo : (x[i] > hi ? hi : x[i]) }
        case .sigmoid:
            for i in 0..<count {
                let v = x[i]
                if v >= 0 { x[i] = 1 / (1 + expf(-v)) } else { let e = expf(v); x[i] = e / (1 + e) }
            }
        case .tanh:
            for i in 0..<count { x[i] = tanhf(x[i]) }
        case .gelu:
            KerfKernels.gelu(x, x, count: count)
        }
    }
}
