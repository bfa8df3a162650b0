import KerfCore

/// The ONNX control-flow operators over tensors: If (`IfOperator`), Loop (`LoopOperator`) and
/// Scan from opset 9 (`ScanOperator`). Each runs its subgraphs as plans of their own
/// (`SubgraphPlan`), compiled at session creation.
enum ControlFlowOps {
    static func register(_ r: inout [String: OperatorFactory]) {
        r["If"] = { try IfOperator($0) }
        r["Loop"] = { try LoopOperator($0) }
        r["Scan"] = { try ScanOperator($0) }
    }
}

extension OperatorContext {
    /// The graph attribute `name`, compiled; `.invalidModel` when it is missing or no graph.
    func subgraphPlan(_ name: String) throws -> SubgraphPlan {
        guard let value = node.attribute(name) else { throw KerfError.invalidModel("attribute '\(name)' is missing") }
        guard case .graph(let g) = value else { throw KerfError.invalidModel("attribute '\(name)' must be a graph") }
        return try SubgraphPlan(g, attribute: name, context: self)
    }
}

/// The value of a condition: a bool tensor of one element (any rank).
func condition(_ t: Tensor, _ what: String) throws -> Bool {
    guard t.dtype == .bool, t.count == 1 else {
        throw KerfError.invalidArgument("\(what) must be a bool tensor of one element, got \(t.dtype) \(t.shape)")
    }
    return t.withElements(as: Bool.self) { $0[0] }
}

/// Stacks per-iteration values of one Loop or Scan output along a new axis `axis` (0 ... rank
/// of the parts): the result has the parts' shape with `parts.count` inserted at `axis`. Every
/// part must have the first's dtype and shape. With no parts (no iteration ran) the result is
/// empty: [0] inserted into `declared`'s shape (unknown dims taken as 0), of its dtype.
func stackIterations(_ parts: [Tensor], axis: Int, declared: ValueInfo) throws -> Tensor {
    guard let first = parts.first else {
        guard let dtype = declared.dtype else {
            throw KerfError.unsupported("no iteration ran and the body's output '\(declared.name)' declares no dtype: its stacked output is unknown")
        }
        var shape = (declared.shape ?? []).map { if case .value(let v) = $0 { return max(v, 0) } else { return 0 } }
        shape.insert(0, at: min(max(axis, 0), shape.count))
        return try Tensor(zeros: dtype, shape: shape)
    }
    for (i, p) in parts.enumerated() where p.dtype != first.dtype || p.shape != first.shape {
        throw KerfError.shapeMismatch("the body's output '\(declared.name)' is \(first.dtype) \(first.shape) in iteration 0 "
                                      + "but \(p.dtype) \(p.shape) in iteration \(i): its values cannot be stacked")
    }
    var unit = first.shape
    unit.insert(1, at: axis)
    return try concat(parts.map { $0.reshaped(unit) }, axis: axis)
}
