import KerfCore

/// What a gradient rule sees of one forward node: its inputs and outputs, the gradients of its
/// outputs, which inputs need a gradient, and the emitter to write backward nodes with.
struct GradientContext {
    let node: Node
    /// d loss / d output, by output position; nil where the loss does not depend on that output.
    let outputGradients: [String?]
    /// Whether input i needs a gradient (a trained parameter depends on it, and it is a float).
    let needs: [Bool]
    let emitter: NodeEmitter

    func input(_ i: Int) -> String { node.inputs[i] }
    func output(_ i: Int) -> String { node.outputs[i] }
    func needs(_ i: Int) -> Bool { i < needs.count && needs[i] }
    /// Whether input i is present (optional inputs may be omitted or empty).
    func has(_ i: Int) -> Bool { i < node.inputs.count && !node.inputs[i].isEmpty }

    /// The gradient of output 0 (a rule is called only when some output has one).
    var dY: String { outputGradients[0] ?? "" }

    /// A name hint for a value computed for input i's gradient.
    func hint(_ what: String) -> String { "\(node.outputs.first ?? node.opType)_\(what)" }

    func int(_ name: String, default d: Int) throws -> Int {
        guard let v = node.attribute(name) else { return d }
        guard case .int(let i) = v else { throw wrongType(name, "int") }
        return Int(i)
    }

    func float(_ name: String, default d: Float) throws -> Float {
        guard let v = node.attribute(name) else { return d }
        guard case .float(let f) = v else { throw wrongType(name, "float") }
        return f
    }

    func ints(_ name: String) throws -> [Int]? {
        guard let v = node.attribute(name) else { return nil }
        guard case .ints(let xs) = v else { throw wrongType(name, "ints") }
        return xs.map { Int($0) }
    }

    /// The constant int64 contents of input i (an initializer or a value inference knows).
    func knownInts(_ i: Int) -> [Int]? {
        guard has(i), let known = emitter.types.values[input(i)] else { return nil }
        return known.integers
    }

    private func wrongType(_ name: String, _ kind: String) -> KerfError {
        KerfError.invalidModel("\(node.label): attribute '\(name)' is not of type \(kind)")
    }
}

/// A gradient rule: the gradient of each input of `context.node` (nil where none is needed or
/// the input is not differentiable), as names of values the rule emitted or of existing values.
typealias GradientRule = (GradientContext) throws -> [String?]
