import KerfCore

/// What inference knows of one tensor: either part may be unknown (`shape` nil: unknown rank).
struct TensorFact: Equatable {
    var dtype: DType?
    var shape: [Dim]?

    static let unknown = TensorFact(dtype: nil, shape: nil)

    var valueType: ValueType { .tensor(dtype: dtype, shape: shape) }
}

/// A shape rule reads a node's input facts and attributes and writes its output facts. Rules
/// must not trap: every index they compute is checked, and a contradiction goes to `fail`.
typealias ShapeRule = (inout ShapeRuleContext) -> Void

/// One node's view of inference: its input facts and known values in, output facts out.
/// Inputs and outputs are indexed as in `node.inputs` / `node.outputs`; an omitted optional
/// input ("" or past the end) reads as unknown.
struct ShapeRuleContext {
    let node: Node
    /// The imported version of the default ONNX operator set.
    let opset: Int
    let inputFacts: [TensorFact]
    let inputValues: [KnownValue?]
    /// Constant tensors (initializers no feed can override, Constant outputs) by value name.
    let constants: [String: Tensor]
    private(set) var outputs: [TensorFact]
    private(set) var outputValues: [KnownValue?]
    private(set) var diagnostics: [String] = []

    init(node: Node, opset: Int, inputFacts: [TensorFact], inputValues: [KnownValue?], constants: [String: Tensor]) {
        self.node = node
        self.opset = opset
        self.inputFacts = inputFacts
        self.inputValues = inputValues
        self.constants = constants
        outputs = Array(repeating: .unknown, count: node.outputs.count)
        outputValues = Array(repeating: nil, count: node.outputs.count)
    }

    // MARK: Inputs

    var inputCount: Int { node.inputs.count }

    /// True when input `i` is present (not omitted).
    func has(_ i: Int) -> Bool { i >= 0 && i < node.inputs.count && !node.inputs[i].isEmpty }

    func fact(_ i: Int) -> TensorFact { has(i) && i < inputFacts.count ? inputFacts[i] : .unknown }
    func shape(_ i: Int) -> [Dim]? { fact(i).shape }
    func dtype(_ i: Int) -> DType? { fact(i).dtype }
    func rank(_ i: Int) -> Int? { shape(i)?.count }
    func value(_ i: Int) -> KnownValue? { has(i) && i < inputValues.count ? inputValues[i] : nil }

    /// Input `i`'s known contents as integers (every element a number).
    func integers(_ i: Int) -> [Int]? { value(i)?.integers }

    /// Input `i`'s contents as Double when it is a constant tensor (float scales, Range bounds).
    func doubles(_ i: Int) -> [Double]? {
        if let ints = integers(i) { return ints.map { Double($0) } }
        guard has(i), let t = constants[node.inputs[i]] else { return nil }
        return KnownValue.doubles(of: t)
    }

    // MARK: Attributes

    func int(_ name: String) -> Int? {
        if case .int(let v)? = node.attribute(name) { return Int(v) }
        return nil
    }

    func int(_ name: String, default d: Int) -> Int { int(name) ?? d }

    func ints(_ name: String) -> [Int]? {
        if case .ints(let v)? = node.attribute(name) { return v.map { Int($0) } }
        return nil
    }

    func float(_ name: String) -> Float? {
        if case .float(let v)? = node.attribute(name) { return v }
        return nil
    }

    func floats(_ name: String) -> [Float]? {
        if case .floats(let v)? = node.attribute(name) { return v }
        return nil
    }

    func string(_ name: String) -> String? {
        if case .string(let v)? = node.attribute(name) { return String(decoding: v, as: UTF8.self) }
        return nil
    }

    func tensor(_ name: String) -> Tensor? {
        if case .tensor(let t)? = node.attribute(name) { return t }
        return nil
    }

    /// A dtype attribute (`to`, `output_dtype`, ...) as a DType; nil when absent or not a code.
    func dtypeAttribute(_ name: String) -> DType? {
        guard let code = int(name), code > 0, code <= Int(Int32.max) else { return nil }
        return DType(rawValue: Int32(code))
    }

    /// An axis attribute or value normalized to `0..<rank`; nil (and a diagnostic) outside.
    mutating func axis(_ a: Int, rank: Int) -> Int? {
        guard let n = Shapes.axis(a, rank: rank) else {
            fail("axis \(a) is outside a rank-\(rank) input")
            return nil
        }
        return n
    }

    /// Several axes normalized and checked for repeats; nil (and a diagnostic) when one is
    /// outside `-rank..<rank` or repeats.
    mutating func axes(_ list: [Int], rank: Int) -> [Int]? {
        var out: [Int] = []
        for a in list {
            guard let n = axis(a, rank: rank) else { return nil }
            guard !out.contains(n) else {
                fail("axis \(a) is repeated")
                return nil
            }
            out.append(n)
        }
        return out
    }

    // MARK: Outputs

    mutating func set(_ i: Int, dtype: DType?, shape: [Dim]?) {
        guard i >= 0, i < outputs.count else { return }
        outputs[i] = TensorFact(dtype: dtype, shape: shape)
    }

    mutating func set(_ i: Int, _ fact: TensorFact) { set(i, dtype: fact.dtype, shape: fact.shape) }

    /// Records output `i`'s contents and, when the output's shape is still unknown, its shape.
    mutating func setValue(_ i: Int, _ v: KnownValue?) {
        guard i >= 0, i < outputs.count, let v else { return }
        outputValues[i] = v
        if outputs[i].shape == nil { outputs[i].shape = v.shape.map(Dim.value) }
    }

    /// Records a contradiction in the node's inputs or attributes.
    mutating func fail(_ message: String) {
        diagnostics.append("\(node.label): \(message)")
    }
}
