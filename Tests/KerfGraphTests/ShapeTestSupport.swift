import FoundationEssentials
import KerfCore
import KerfGraph

// Dims written as literals in tests: 16 is `.value(16)`, "N" is `.symbol("N")`, "?" is `.unknown`.
extension Dim: ExpressibleByIntegerLiteral, ExpressibleByStringLiteral,
    ExpressibleByUnicodeScalarLiteral, ExpressibleByExtendedGraphemeClusterLiteral {
    public init(integerLiteral value: Int) { self = .value(value) }
    public init(stringLiteral value: String) { self = value == "?" ? .unknown : .symbol(value) }
}

/// A node with attributes given as a dictionary (tests only).
func op(_ type: String, _ inputs: [String], _ outputs: [String], _ attributes: [String: AttributeValue] = [:]) -> Node {
    Node(name: outputs.first ?? type, opType: type, inputs: inputs, outputs: outputs,
         attributes: attributes.sorted { $0.key < $1.key }.map { Attribute(name: $0.key, value: $0.value) })
}

func ints(_ v: [Int]) -> AttributeValue { .ints(v.map { Int64($0) }) }
func int(_ v: Int) -> AttributeValue { .int(Int64(v)) }
func str(_ s: String) -> AttributeValue { .string(Data(s.utf8)) }

/// An int64 initializer.
func int64s(_ name: String, _ values: [Int], shape: [Int]? = nil) -> Initializer {
    Initializer(name: name, tensor: Tensor(shape: shape ?? [values.count], values: values.map { Int64($0) }))
}

/// A float initializer of `shape`, zero-filled.
func floats(_ name: String, _ shape: [Int]) -> Initializer {
    Initializer(name: name, tensor: Tensor(shape: shape, values: [Float](repeating: 0, count: shape.reduce(1, *))))
}

/// Inference over `nodes` with float (unless given) inputs of the given shapes.
func infer(_ nodes: [Node], inputs: [(String, [Dim])], dtype: DType = .float, initializers: [Initializer] = [],
           valueInfo: [ValueInfo] = [], opset: Int = 17) -> InferredTypes {
    let g = Graph(nodes: nodes, inputs: inputs.map { ValueInfo(name: $0.0, type: .tensor(dtype: dtype, shape: $0.1)) },
                  valueInfo: valueInfo, initializers: initializers)
    return g.inferTypes(opset: opset)
}
