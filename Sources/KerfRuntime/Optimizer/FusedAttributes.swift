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
    static let beta = "kerf.beta"
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
        case .hardSwish: return [Attribute(name: Self.activation, value: s("HardSwish"))]
        case .silu: return [Attribute(name: Self.activation, value: s("SiLU"))]
        case .hardSigmoid(let a, let b):
            return [Attribute(name: Self.activation, value: s("HardSigmoid")), Attribute(name: alpha, value: .float(a)),
                    Attribute(name: beta, value: .float(b))]
        case .leakyRelu(let a): return [Attribute(name: Self.activation, value: s("LeakyRelu")), Attribute(name: alpha, value: .float(a))]
        case .clip(let lo, let hi):
            return [Attribute(name: Self.activation, value: s("Clip")), Attribute(name: minimum, value: .float(lo)),
                    Attribute(name: maximum, value: .float(hi))]
        }
    }
}

extension FusedAttributes {
    /// The activation fused into `node` by the optimizer (`.none` for plain ONNX nodes).
    static func activation(of node: Node) throws -> Activation {
        func float(_ name: String, default d: Float) throws -> Float { try FusedAttributes.float(name, of: node, default: d) }
        guard let value = node.attribute(activation) else { return .none }
        guard case .string(let bytes) = value else { throw KerfError.invalidModel("attribute '\(activation)' must be of type string") }
        let name = String(decoding: bytes, as: UTF8.self)
        switch name {
        case "Relu": return .relu
        case "Sigmoid": return .sigmoid
        case "Tanh": return .tanh
        case "Gelu": return .gelu
        case "HardSwish": return .hardSwish
        case "SiLU": return .silu
        case "HardSigmoid": return .hardSigmoid(alpha: try float(alpha, default: 0.2), beta: try float(beta, default: 0.5))
        case "LeakyRelu": return .leakyRelu(alpha: try float(alpha, default: 0.01))
        case "Clip": return .clip(min: try float(minimum, default: -.infinity), max: try float(maximum, default: .infinity))
        default: throw KerfError.invalidModel("unknown fused activation '\(name)'")
        }
    }
}

extension OperatorContext {
    /// The activation fused into this node by the optimizer (`.none` for plain ONNX nodes).
    func fusedActivation() throws -> Activation { try FusedAttributes.activation(of: node) }
}

extension FusedAttributes {
    /// `node`'s int attribute `name`, or `d` when absent.
    static func int(_ name: String, of node: Node, default d: Int) throws -> Int {
        guard let v = node.attribute(name) else { return d }
        guard case .int(let i) = v, let r = Int(exactly: i) else { throw KerfError.invalidModel("attribute '\(name)' must be of type int") }
        return r
    }

    /// `node`'s float attribute `name` (an int is taken too), or `d` when absent.
    static func float(_ name: String, of node: Node, default d: Float) throws -> Float {
        switch node.attribute(name) {
        case nil: return d
        case .float(let f)?: return f
        case .int(let i)?: return Float(i)
        default: throw KerfError.invalidModel("attribute '\(name)' must be of type float")
        }
    }
}
