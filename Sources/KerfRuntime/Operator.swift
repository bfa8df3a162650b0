import KerfCore

/// A node made ready to run: attributes parsed and validated once, at session creation.
public protocol Operator {
    /// Computes the node's outputs. `inputs[i]` is nil for an omitted optional input.
    /// Returns one tensor per node output (trailing optional outputs may be omitted).
    func run(_ inputs: [Tensor?]) throws -> [Tensor]

    /// `run` on inputs handed over by the caller (a session hands over the values this node
    /// reads last): the operator may take them out of `inputs` and write its result into one
    /// whose storage nothing else references (`Tensor.isUniquelyOwned`), saving a buffer.
    /// `inputs` is undefined afterwards. The default runs `run(inputs)`.
    func run(consuming inputs: inout [Tensor?]) throws -> [Tensor]
}

extension Operator {
    public func run(consuming inputs: inout [Tensor?]) throws -> [Tensor] { try run(inputs) }
}

/// What an operator factory sees of its node.
public struct OperatorContext {
    public let node: Node
    /// Version of the node's domain imported by the model.
    public let opset: Int
    /// Inputs whose values are known at session creation (initializers, constants), by position.
    public let constantInputs: [Tensor?]
    public let options: SessionOptions
    /// The values of enclosing graphs that the node's subgraphs read (`Node.implicitInputs`):
    /// `run` gets them after the node's own inputs, in this order. Empty for a node without
    /// subgraphs.
    public let implicitInputs: [String]
    /// The operator sets the model imports (for planning subgraphs).
    let opsets: [OpsetImport]
    /// The positions of `constantInputs` that no feed can replace and the operator may take
    /// (`takeConstant`); the session reads back which it took. nil: none may be taken.
    let ownership: ConstantOwnership?

    /// A context for a node read alone (no implicit inputs; subgraphs planned with the default
    /// domain at `opset` only).
    public init(node: Node, opset: Int, constantInputs: [Tensor?], options: SessionOptions) {
        self.init(node: node, opset: opset, constantInputs: constantInputs, options: options, ownership: nil,
                  implicitInputs: [], opsets: [OpsetImport(domain: "", version: opset)])
    }

    init(node: Node, opset: Int, constantInputs: [Tensor?], options: SessionOptions, ownership: ConstantOwnership?,
         implicitInputs: [String], opsets: [OpsetImport]) {
        self.node = node
        self.opset = opset
        self.constantInputs = constantInputs
        self.options = options
        self.ownership = ownership
        self.implicitInputs = implicitInputs
        self.opsets = opsets
    }

    public func constant(_ index: Int) -> Tensor? {
        index < constantInputs.count ? constantInputs[index] : nil
    }

    /// The constant input at `index` for the operator to keep as its own: non-nil only when no
    /// feed can replace it and the session allows it. The operator then must not read input
    /// `index` at run time (the session may pass nil there) and holds what it needs itself: when
    /// every reader of a constant took it, the session keeps no reference to it, so an operator
    /// that made something else to run from (packed weights) can let the tensor go, and its
    /// memory is freed once the model that loaded it is gone too.
    public func takeConstant(_ index: Int) -> Tensor? {
        guard let ownership, index < constantInputs.count, let t = constantInputs[index], ownership.takeable.contains(index) else {
            return nil
        }
        ownership.taken.insert(index)
        return t
    }

    // MARK: Attributes

    public func has(_ name: String) -> Bool { node.attribute(name) != nil }

    public func int(_ name: String) throws -> Int? {
        guard let v = node.attribute(name) else { return nil }
        guard case .int(let i) = v else { throw wrongType(name, "int") }
        guard let r = Int(exactly: i) else { throw wrongType(name, "int") }
        return r
    }

    public func int(_ name: String, default d: Int) throws -> Int { try int(name) ?? d }

    public func ints(_ name: String) throws -> [Int]? {
        guard let v = node.attribute(name) else { return nil }
        guard case .ints(let xs) = v else { throw wrongType(name, "ints") }
        return xs.map { Int($0) }
    }

    public func float(_ name: String, default d: Float) throws -> Float {
        guard let v = node.attribute(name) else { return d }
        switch v {
        case .float(let f): return f
        case .int(let i): return Float(i)
        default: throw wrongType(name, "float")
        }
    }

    public func floats(_ name: String) throws -> [Float]? {
        guard let v = node.attribute(name) else { return nil }
        guard case .floats(let xs) = v else { throw wrongType(name, "floats") }
        return xs
    }

    public func strings(_ name: String) throws -> [String]? {
        guard let v = node.attribute(name) else { return nil }
        guard case .strings(let xs) = v else { throw wrongType(name, "strings") }
        return xs.map { String(decoding: $0, as: UTF8.self) }
    }

    public func string(_ name: String) throws -> String? {
        guard let v = node.attribute(name) else { return nil }
        guard case .string(let s) = v else { throw wrongType(name, "string") }
        return String(decoding: s, as: UTF8.self)
    }

    public func string(_ name: String, default d: String) throws -> String { try string(name) ?? d }

    public func tensor(_ name: String) throws -> Tensor? {
        guard let v = node.attribute(name) else { return nil }
        guard case .tensor(let t) = v else { throw wrongType(name, "tensor") }
        return t
    }

    private func wrongType(_ name: String, _ expected: String) -> KerfError {
        .invalidModel("attribute '\(name)' must be of type \(expected)")
    }
}

/// Which constant inputs of one node an operator may take, and which it took (session creation).
final class ConstantOwnership {
    let takeable: Set<Int>
    var taken: Set<Int> = []
    init(takeable: Set<Int>) { self.takeable = takeable }
}

public typealias OperatorFactory = (OperatorContext) throws -> Operator

/// An operator defined by a closure over its inputs (for ops with no per-node preparation).
public struct ClosureOperator: Operator {
    let body: ([Tensor?]) throws -> [Tensor]
    let consuming: ((inout [Tensor?]) throws -> [Tensor])?
    public init(_ body: @escaping ([Tensor?]) throws -> [Tensor]) {
        self.body = body
        consuming = nil
    }

    private init(body: @escaping ([Tensor?]) throws -> [Tensor], consuming: @escaping (inout [Tensor?]) throws -> [Tensor]) {
        self.body = body
        self.consuming = consuming
    }

    /// An operator that may write its result over an input handed to it (`run(consuming:)`);
    /// `run` hands it a copy of the inputs, so that nothing of the caller's is overwritten.
    public static func consuming(_ body: @escaping (inout [Tensor?]) throws -> [Tensor]) -> ClosureOperator {
        ClosureOperator(body: { inputs in
            var copy = inputs
            return try body(&copy)
        }, consuming: body)
    }

    public func run(_ inputs: [Tensor?]) throws -> [Tensor] { try body(inputs) }
    public func run(consuming inputs: inout [Tensor?]) throws -> [Tensor] {
        if let consuming { return try consuming(&inputs) }
        return try body(inputs)
    }
}

// MARK: - Input access helpers

extension Array where Element == Tensor? {
    /// The input at `index`, which the op requires.
    public func required(_ index: Int, _ what: String = "") throws -> Tensor {
        guard index < count, let t = self[index] else {
            throw KerfError.invalidArgument("missing required input \(index)\(what.isEmpty ? "" : " (\(what))")")
        }
        return t
    }

    public func optional(_ index: Int) -> Tensor? { index < count ? self[index] : nil }

    /// Moves the input at `index` out of the array (nil when absent), so that the array no
    /// longer references it.
    public mutating func take(_ index: Int) -> Tensor? {
        guard index < count, let t = self[index] else { return nil }
        self[index] = nil
        return t
    }

    /// `required`, moving the input out of the array (`take`).
    public mutating func takeRequired(_ index: Int, _ what: String = "") throws -> Tensor {
        guard let t = take(index) else {
            throw KerfError.invalidArgument("missing required input \(index)\(what.isEmpty ? "" : " (\(what))")")
        }
        return t
    }
}
