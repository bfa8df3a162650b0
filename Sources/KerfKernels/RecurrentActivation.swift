#if canImport(Glibc)
import Glibc
#endif

/// An activation function of ONNX's recurrent ops (LSTM, GRU, RNN `activations`), with the
/// alpha and beta it uses (ONNX's defaults unless the node gives them).
public struct RecurrentActivation: Equatable, Sendable {
    /// The functions by their ONNX names.
    public enum Kind: String, Sendable, CaseIterable {
        case relu = "Relu", tanh = "Tanh", sigmoid = "Sigmoid", affine = "Affine", leakyRelu = "LeakyRelu"
        case thresholdedRelu = "ThresholdedRelu", scaledTanh = "ScaledTanh", hardSigmoid = "HardSigmoid", elu = "Elu"
        case softsign = "Softsign", softplus = "Softplus"

        /// (alpha, beta) defaults; nil for a parameter the function does not take.
        public var defaults: (alpha: Float?, beta: Float?) {
            switch self {
            case .affine: return (1, 0)
            case .leakyRelu: return (0.01, nil)
            case .thresholdedRelu, .elu: return (1, nil)
            case .scaledTanh: return (1, 1)
            case .hardSigmoid: return (0.2, 0.5)
            case .relu, .tanh, .sigmoid, .softsign, .softplus: return (nil, nil)
            }
        }
    }

    public let kind: Kind
    public let alpha: Float
    public let beta: Float

    public init(_ kind: Kind, alpha: Float? = nil, beta: Float? = nil) {
        self.kind = kind
        self.alpha = alpha ?? kind.defaults.alpha ?? 0
        self.beta = beta ?? kind.defaults.beta ?? 0
    }

    /// Applies the function to `count` floats at `x`, in place.
    public func apply(_ x: UnsafeMutablePointer<Float>, count: Int) {
        let a = alpha, b = beta
        switch kind {
        case .relu: for i in 0..<count where x[i] < 0 { x[i] = 0 }
        case .tanh: for i in 0..<count { x[i] = fastTanh(x[i]) }
        case .sigmoid: for i in 0..<count { x[i] = sigmoid(x[i]) }
        case .affine: for i in 0..<count { x[i] = a * x[i] + b }
        case .leakyRelu: for i in 0..<count where x[i] < 0 { x[i] *= a }
        case .thresholdedRelu: for i in 0..<count where !(x[i] > a) { x[i] = 0 }
        case .scaledTanh: for i in 0..<count { x[i] = a * fastTanh(b * x[i]) }
        case .hardSigmoid: for i in 0..<count { x[i] = Swift.max(0, Swift.min(1, a * x[i] + b)) }
        case .elu: for i in 0..<count where x[i] < 0 { x[i] = a * (expf(x[i]) - 1) }
        case .softsign: for i in 0..<count { x[i] /= 1 + abs(x[i]) }
        case .softplus:
            for i in 0..<count {
                let v = x[i]
                x[i] = v > 0 ? v + log1pf(expf(-v)) : log1pf(expf(v))
            }
        }
    }
}

/// 1 / (1 + e^-x) with `fastExp` (branch-free: loops over it vectorize); e^-x overflowing to
/// infinity gives 0, as it should.
@inline(__always)
private func sigmoid(_ v: Float) -> Float { 1 / (1 + fastExp(-v)) }
