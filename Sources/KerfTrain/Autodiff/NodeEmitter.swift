import KerfCore
import KerfGraph

/// Writes nodes that extend a graph (a loss, a backward pass): fresh value names, constants,
/// and the common sub-steps of gradient rules (broadcast reductions, transposes, reshapes) in
/// the form the model's opset expects. Constants and `Shape` nodes are made once and reused.
final class NodeEmitter {
    /// The domain of Kerf's gradient operators (`SumToShape`, `SoftmaxGrad`, ...), run by
    /// KerfRuntime; a training graph imports it at version 1.
    static let domain = "kerf.training"

    /// The model's default-domain opset: the form of Reduce*, Squeeze, Unsqueeze and Split.
    let opset: Int
    let types: InferredTypes
    private(set) var nodes: [Node] = []
    private(set) var constants: [Initializer] = []
    private let names: NameAllocator
    private var constantNames: [String: String] = [:]
    private var shapeNames: [String: String] = [:]

    init(graph: Graph, opset: Int, types: InferredTypes) {
        self.opset = opset
        self.types = types
        names = NameAllocator(graph)
    }

    /// A fresh value name derived from `base`.
    func name(_ base: String) -> String { names.make(base) }

    /// Appends a node computing `outputs` fresh values named after `hint`; returns their names.
    @discardableResult
    func emit(_ op: String, _ inputs: [String], _ attributes: [Attribute] = [], domain: String = "",
              outputs: Int = 1, hint: String) -> [String] {
        let outs = (0..<outputs).map { _ in names.make(hint) }
        nodes.append(Node(name: outs[0], opType: op, domain: domain, inputs: inputs, outputs: outs, attributes: attributes))
        return outs
    }

    /// `emit` for a node with one output.
    func emit1(_ op: String, _ inputs: [String], _ attributes: [Attribute] = [], domain: String = "", hint: String) -> String {
        emit(op, inputs, attributes, domain: domain, hint: hint)[0]
    }

    // MARK: What is known of forward values

    /// The element type of `value`; float when inference could not tell.
    func dtype(of value: String) -> DType { types.dtype(of: value) ?? .float }

    /// The rank of `value`, when inference knows it.
    func rank(of value: String) -> Int? { types.shape(of: value)?.count }

    /// The rank of `value`, or an error naming what needs it.
    func requireRank(of value: String, for node: Node) throws -> Int {
        guard let r = rank(of: value) else {
            throw KerfError.unsupported("the gradient of \(node.label) needs the rank of '\(value)', which shape inference could not find")
        }
        return r
    }

    /// Whether `a` and `b` have the same static shape (every dim a number or the same symbol).
    func sameShape(_ a: String, _ b: String) -> Bool {
        guard let sa = types.shape(of: a), let sb = types.shape(of: b), sa.count == sb.count else { return false }
        return zip(sa, sb).allSatisfy { x, y in
            switch (x, y) {
            case (.value(let u), .value(let v)): return u == v
            case (.symbol(let u), .symbol(let v)): return u == v
            default: return false
            }
        }
    }

    // MARK: Constants

    /// A scalar constant of `dtype` (float types only).
    func scalar(_ value: Double, _ dtype: DType) -> String {
        let key = "\(dtype):\(value)"
        if let n = constantNames[key] { return n }
        let tensor = dtype == .double ? Tensor(scalar: value) : Tensor(scalar: Float(value))
        let n = names.make("grad_const")
        constants.append(Initializer(name: n, tensor: tensor))
        constantNames[key] = n
        return n
    }

    /// A 1-D int64 constant.
    func int64s(_ values: [Int]) -> String {
        let key = "i64:\(values)"
        if let n = constantNames[key] { return n }
        let n = names.make("grad_ints")
        constants.append(Initializer(name: n, tensor: Tensor(shape: [values.count], values: values.map(Int64.init))))
        constantNames[key] = n
        return n
    }

    // MARK: Sub-steps of gradient rules

    /// `Shape(value)`, made once.
    func shape(of value: String) -> String {
        if let n = shapeNames[value] { return n }
        let n = emit1("Shape", [value], hint: "\(value)_shape")
        shapeNames[value] = n
        return n
    }

    /// `gradient` (of a value broadcast from `input`'s shape) summed back to `input`'s shape;
    /// `gradient` itself when their static shapes are equal.
    func sumToShape(_ gradient: String, of input: String, hint: String) -> String {
        if sameShape(gradient, input) { return gradient }
        return emit1("SumToShape", [gradient, shape(of: input)], domain: Self.domain, hint: hint)
    }

    /// `gradient` reshaped to `input`'s shape.
    func reshape(_ gradient: String, like input: String, hint: String) -> String {
        if sameShape(gradient, input) { return gradient }
        return emit1("Reshape", [gradient, shape(of: input)], hint: hint)
    }

    func mul(_ a: String, _ b: String, hint: String) -> String { emit1("Mul", [a, b], hint: hint) }
    func neg(_ a: String, hint: String) -> String { emit1("Neg", [a], hint: hint) }

    func transpose(_ x: String, perm: [Int], hint: String) -> String {
        emit1("Transpose", [x], [Attribute(name: "perm", value: .ints(perm.map(Int64.init)))], hint: hint)
    }

    /// `x` with its last two axes swapped (rank >= 2).
    func swapLastAxes(_ x: String, rank: Int, hint: String) -> String {
        var perm = Array(0..<rank)
        perm.swapAt(rank - 1, rank - 2)
        return transpose(x, perm: perm, hint: hint)
    }

    /// `Unsqueeze(x, axes)` in the opset's form (axes an input from opset 13).
    func unsqueeze(_ x: String, axes: [Int], hint: String) -> String {
        if opset >= 13 { return emit1("Unsqueeze", [x, int64s(axes)], hint: hint) }
        return emit1("Unsqueeze", [x], [Attribute(name: "axes", value: .ints(axes.map(Int64.init)))], hint: hint)
    }

    /// `ReduceSum(x, axes, keepdims)` in the opset's form (axes an input from opset 13).
    func reduceSum(_ x: String, axes: [Int], keepDims: Bool, hint: String) -> String {
        let keep = Attribute(name: "keepdims", value: .int(keepDims ? 1 : 0))
        if opset >= 13 { return emit1("ReduceSum", [x, int64s(axes)], [keep], hint: hint) }
        return emit1("ReduceSum", [x], [keep, Attribute(name: "axes", value: .ints(axes.map(Int64.init)))], hint: hint)
    }

    /// `Gemm(a, b)` with the given transposes and alpha.
    func gemm(_ a: String, _ b: String, transA: Bool = false, transB: Bool = false, alpha: Float = 1, hint: String) -> String {
        var attributes: [Attribute] = []
        if transA { attributes.append(Attribute(name: "transA", value: .int(1))) }
        if transB { attributes.append(Attribute(name: "transB", value: .int(1))) }
        if alpha != 1 { attributes.append(Attribute(name: "alpha", value: .float(alpha))) }
        return emit1("Gemm", [a, b], attributes, hint: hint)
    }

    /// Zeros of `value`'s shape and dtype.
    func zeros(like value: String, hint: String) -> String {
        let zero = dtype(of: value) == .double ? Tensor(scalar: 0.0) : Tensor(scalar: Float(0))
        return emit1("ConstantOfShape", [shape(of: value)], [Attribute(name: "value", value: .tensor(zero.reshaped([1])))], hint: hint)
    }
}

extension NodeEmitter {
    /// `value` cast to `dtype`, or `value` itself when inference says it already is one.
    func castIfNeeded(_ value: String, to dtype: DType, hint: String) -> String {
        if types.dtype(of: value) == dtype { return value }
        return emit1("Cast", [value], [Attribute(name: "to", value: .int(Int64(dtype.rawValue)))], hint: hint)
    }
}

extension NodeEmitter {
    /// A constant tensor (not shared with other constants).
    func constant(_ tensor: Tensor, hint: String) -> String {
        let n = name(hint)
        constants.append(Initializer(name: n, tensor: tensor))
        return n
    }

    /// `ReduceMean(x, axes, keepdims)` in the opset's form (axes an input from opset 18).
    func reduceMean(_ x: String, axes: [Int], keepDims: Bool, hint: String) -> String {
        let keep = Attribute(name: "keepdims", value: .int(keepDims ? 1 : 0))
        if opset >= 18 { return emit1("ReduceMean", [x, int64s(axes)], [keep], hint: hint) }
        return emit1("ReduceMean", [x], [keep, Attribute(name: "axes", value: .ints(axes.map(Int64.init)))], hint: hint)
    }
}
