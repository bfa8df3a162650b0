import KerfCore
import KerfGraph

/// The backward part of a training graph: nodes to append after the forward nodes, the
/// constants they read, and the value holding each parameter's gradient.
public struct BackwardGraph {
    /// In dependency order; they read forward values, the gradient seed and `constants`.
    public var nodes: [Node]
    public var constants: [Initializer]
    /// Parameter name → the value holding d loss / d parameter (same shape as the parameter).
    /// A parameter the loss does not depend on has none (as PyTorch leaves its `.grad` None).
    public var gradients: [String: String]
}

/// Reverse-mode differentiation of a graph, as a graph transform.
public enum Differentiation {
    /// Ops whose outputs carry no gradient: integer results, shapes, comparisons, rounding.
    static let nonDifferentiable: Set<String> = [
        "Shape", "Size", "ArgMax", "ArgMin", "Equal", "Greater", "GreaterOrEqual", "Less", "LessOrEqual",
        "Not", "And", "Or", "Xor", "IsNaN", "IsInf", "NonZero", "Floor", "Ceil", "Round", "Sign",
        "ConstantOfShape", "Constant", "Range", "EyeLike", "RandomNormal", "RandomUniform",
        "RandomNormalLike", "RandomUniformLike", "Bernoulli", "Multinomial", "OneHot",
    ]

    /// The backward graph of the scalar `loss` with respect to `parameters` (values of `graph`:
    /// inputs or initializers, float tensors). `types` are `graph`'s inferred types; `opset` its
    /// default-domain opset. Every node on a path from a parameter to the loss must have a
    /// gradient rule; otherwise the error names the op, the node and a parameter behind it.
    public static func backward(of loss: String, in graph: Graph, withRespectTo parameters: [String],
                                opset: Int, types: InferredTypes) throws -> BackwardGraph {
        let order = try graph.topologicalOrder()
        let isFloat = { (v: String) -> Bool in types.dtype(of: v).map(\.isFloatingPoint) ?? true }

        // Which parameter (one of them) each value depends on, walking forward.
        var reachedBy: [String: String] = [:]
        for p in parameters { reachedBy[p] = p }
        for node in order where !nonDifferentiable.contains(node.opType) {
            guard let p = node.inputs.lazy.compactMap({ reachedBy[$0] }).first else { continue }
            for out in node.outputs where !out.isEmpty && isFloat(out) { reachedBy[out] = p }
        }
        guard reachedBy[loss] != nil || parameters.isEmpty else {
            throw KerfError.invalidArgument("the loss '\(loss)' does not depend on any trained parameter")
        }
        // Which values the loss depends on, walking back.
        var feedsLoss: Set<String> = [loss]
        for node in order.reversed() where node.outputs.contains(where: feedsLoss.contains) {
            feedsLoss.formUnion(node.inputs)
        }

        let emitter = NodeEmitter(graph: graph, opset: opset, types: types)
        var contributions: [String: [String]] = [loss: [emitter.scalar(1, types.dtype(of: loss) ?? .float)]]
        var summed: [String: String] = [:]
        func gradient(of value: String) -> String? {
            if let s = summed[value] { return s }
            guard let parts = contributions[value], !parts.isEmpty else { return nil }
            let g = parts.count == 1 ? parts[0] : emitter.emit1("Sum", parts, hint: "\(value)_grad")
            summed[value] = g
            return g
        }

        for node in order.reversed() where !nonDifferentiable.contains(node.opType) {
            let needs = node.inputs.map { !$0.isEmpty && reachedBy[$0] != nil && feedsLoss.contains($0) }
            guard needs.contains(true) else { continue }
            let outputGradients = node.outputs.map { $0.isEmpty ? nil : gradient(of: $0) }
            guard outputGradients.contains(where: { $0 != nil }) else { continue }
            guard let rule = GradientRules.rule(for: node) else {
                let p = node.inputs.lazy.compactMap { reachedBy[$0] }.first ?? "?"
                let op = node.isDefaultDomain ? node.opType : "\(node.domain).\(node.opType)"
                throw KerfError.unsupported("no gradient rule for \(op): \(node.label) lies between the trained parameter '\(p)' and the loss")
            }
            let context = GradientContext(node: node, outputGradients: outputGradients, needs: needs, emitter: emitter)
            let inputGradients: [String?]
            do {
                inputGradients = try rule(context)
            } catch let e as KerfError {
                throw e.prefixed("gradient of \(node.label)")
            }
            for (i, g) in inputGradients.enumerated() where i < needs.count && needs[i] {
                guard let g else { continue }
                contributions[node.inputs[i], default: []].append(g)
            }
        }
        var gradients: [String: String] = [:]
        for p in parameters {
            if let g = gradient(of: p) { gradients[p] = g }
        }
        return BackwardGraph(nodes: emitter.nodes, constants: emitter.constants, gradients: gradients)
    }
}
