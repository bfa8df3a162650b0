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
    /// max(0, min(1, alpha · x + beta)), ONNX HardSigmoid.
    case hardSigmoid(alpha: Float, beta: Float)
    /// x · max(0, min(1, x · (1/6) + 0.5)), ONNX HardSwish.
    case hardSwish
    /// x · sigmoid(x) (SiLU, Swish; torch exports it as Mul(x, Sigmoid(x))), with `fastExp`.
    case silu

    /// Applies the activation to `count` floats at `x`.
    public func apply(_ x: UnsafeMutablePointer<Float>, count: Int) {
        switch self {
        case .none:
            return
        case .relu:
            // Selects, not branches, so that the loops vectorize; NaN stays NaN.
            for i in 0..<count {
                let v = x[i]
                x[i] = v > 0 || v != v ? v : 0
            }
        case .leakyRelu(let alpha):
            for i in 0..<count {
                let v = x[i]
                x[i] = v < 0 ? v * alpha : v
            }
        case .clip(let lo, let hi):
            for i in 0..<count { x[i] = x[i] < lo ? lo : (x[i] > hi ? hi : x[i]) }
        case .sigmoid:
            for i in 0..<count {
                let v = x[i]
                if v >= 0 { x[i] = 1 / (1 + expf(-v)) } else { let e = expf(v); x[i] = e / (1 + e) }
            }
        case .tanh:
            for i in 0..<count { x[i] = fastTanh(x[i]) }
        case .gelu:
            KerfKernels.gelu(x, x, count: count)
        case .hardSigmoid(let alpha, let beta):
            hardGate(x, count: count, alpha: alpha, beta: beta, times: false)
        case .hardSwish:
            hardGate(x, count: count, alpha: 1 / 6, beta: 0.5, times: true)
        case .silu:
            KerfKernels.silu(x, x, count: count)
        }
    }
}

/// x = [x ·] max(0, min(1, alpha · x + beta)) in place, 8 lanes at a time (HardSwish: alpha
/// 1/6, beta 0.5, as the ONNX definition computes it).
private func hardGate(_ x: UnsafeMutablePointer<Float>, count: Int, alpha: Float, beta: Float, times: Bool) {
    @inline(__always) func gate(_ v: SIMD8<Float>) -> SIMD8<Float> {
        let t = v * alpha + beta
        // Swift.max(0, Swift.min(1, t)), NaN included: min gives 1, as the operators compute.
        let m = t.replacing(with: 1, where: .!(t .< 1))
        let g = m.replacing(with: 0, where: .!(m .>= 0))
        return times ? v * g : g
    }
    var i = 0
    while i + 8 <= count {
        let p = UnsafeMutableRawPointer(x + i)
        p.storeBytes(of: gate(p.loadUnaligned(as: SIMD8<Float>.self)), as: SIMD8<Float>.self)
        i += 8
    }
    for j in i..<count { x[j] = gate(SIMD8<Float>(repeating: x[j]))[0] }
}

/// x · sigmoid(x) as x / (1 + e^-x) with `fastExp` (branch-free: loops over it vectorize); -0
/// for x below about -88, NaN for NaN.
@inlinable @inline(__always)
public func silu(_ x: Float) -> Float { x / (1 + fastExp(-x)) }
