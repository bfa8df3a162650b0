import KerfCore

/// ONNX If (opsets 1-23): runs `then_branch` when input `cond` (a bool tensor of one element) is
/// true, `else_branch` otherwise, and returns that branch's outputs. Both branches take no
/// inputs, have as many outputs as the node, and may read values of the enclosing graphs by
/// name. The two branches may return different shapes (and, from one run to the next, the node
/// does); the outputs' dtypes, where both branches declare them, must agree.
struct IfOperator: Operator {
    let thenBranch: SubgraphPlan
    let elseBranch: SubgraphPlan
    /// Where the implicit inputs start in `run`'s inputs.
    let implicitStart: Int

    init(_ c: OperatorContext) throws {
        thenBranch = try c.subgraphPlan("then_branch")
        elseBranch = try c.subgraphPlan("else_branch")
        implicitStart = c.node.inputs.count
        for (name, branch) in [("then_branch", thenBranch), ("else_branch", elseBranch)] {
            guard branch.inputs.isEmpty else {
                throw KerfError.invalidModel("\(name) declares \(branch.inputs.count) inputs; an If branch takes none")
            }
            guard branch.outputs.count == c.node.outputs.count else {
                throw KerfError.invalidModel("\(name) has \(branch.outputs.count) outputs and the node \(c.node.outputs.count); they must match")
            }
        }
        for (a, b) in zip(thenBranch.outputs, elseBranch.outputs) {
            if let x = a.dtype, let y = b.dtype, x != y {
                throw KerfError.invalidModel("then_branch output '\(a.name)' is \(x) but else_branch output '\(b.name)' is \(y)")
            }
        }
    }

    func run(_ inputs: [Tensor?]) throws -> [Tensor] {
        let branch = try condition(inputs.required(0, "cond"), "cond") ? thenBranch : elseBranch
        return try branch.run([], implicit: inputs[min(implicitStart, inputs.count)...])
    }
}
