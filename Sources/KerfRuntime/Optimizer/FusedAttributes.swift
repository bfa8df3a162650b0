import FoundationEssentials
import KerfCore
import KerfGraph
import KerfKernels

/// Attributes the graph optimizer puts on the nodes it fuses. They exist only in a session's
/// private copy of the graph (never in a saved model); the `kerf.` prefix keeps them apart
/// from ONNX attribute names.
enum FusedAttributes {
    static let activation = "kerf.activation"
    static let alpha = "kerf.alpha"
    static let minimum = "kerf.min"
    static let maximum = "kerf.max"
    /// On MatMul: input 2 is a bias added to every row.
    static let bias = "kerf.bias"
    /// On Conv: input 3 is added to the output (before the fused activation, if any).
    static let residual = "kerf.residual"
    /// On a Transpose the channels-last rewrite made (NCHW <-> NHWC next to oneDNN's
    /// convolutions): it runs on the OpenMP team those convolutions use.
    static let layoutChange = "kerf.layout_change"

    /// The attributes that record `activation` on a node.
    static func attributes(for activation: Activation) -> [Attribute] {
        func s(_ v: String) -> AttributeValue { .string(Data(v.utf8)) }
        switch activation {
        case .none: return []
        case .relu: return [Attribute(name: Self.activation, value: s("Relu"))]
        case .sigmoid: return [Attribute(name: Self.activation, value: s("Sigmoid"))]
        case .tanh: return [Attribute(name: Self.activation, value: s("Tanh"))]
        case .gelu: return [Attribute(name: Self.activation, value: s("Gelu"))]
        case .leakyRelu(let a): return [Attribute(name: Self.activation, value: s("LeakyRelu")), Attribute(name: alpha, value: .float(a))]
        case .clip(let lo, let hi):
            return [Attribute(name: Self.activation, value: s("Clip")), Attribute(name: minimum, value: .float(lo)),
                    Attribute(name: maximum, value: .float(hi))]
        }
    }
}

extension OperatorContext {
    /// The activation fused into this node by the optimizer (`.none` for plain ONNX nodes).
    func fusedActivation() throws -> Activation {
        guard let name = try string(FusedAttributes.activation) else { return .none }
        switch name {
        case "Relu": return .relu
        case "Sigmoid": return .sigmoid
        case "Tanh": return .tanh
        case "Gelu": return .gelu
        case "LeakyRelu": return .leakyRelu(alpha: try float(FusedAttributes.alpha, default: 0.01))
        case "Clip": return .clip(min: try float(FusedAttributes.minimum, default: -.infinity),
                                  max: try float(FusedAttributes.maximum, default: .infinity))
        default: throw KerfError.invalidModel("unknown fused activation '\(name)'")
        }
    }
}
