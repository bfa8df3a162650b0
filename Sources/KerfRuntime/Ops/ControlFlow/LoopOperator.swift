import KerfCore

/// ONNX Loop (opsets 1-23) over tensors. Inputs: `M` (optional int64 trip count, one element),
/// `cond` (optional bool, one element), then N loop-carried initial values. The body takes
/// (iteration number: int64 scalar, condition, N carried values) and returns (condition,
/// N carried values, K scan values). Iteration i (from 0) runs while i < M (when M is given)
/// and the condition holds: `cond` before the first iteration (true when omitted), then the
/// body's condition output, read whether or not `cond` was given (as ONNX Runtime and the
/// ONNX reference do). Outputs: the N final carried values (the initial ones when no iteration
/// ran), then the K scan outputs, each the per-iteration values stacked along a new axis 0
/// (every iteration must give the same shape; carried values may change shape).
///
/// A negative M runs no iteration. A loop whose condition never turns false and that has no
/// M runs until it does (or until its scan outputs pass the memory limit), as the model says.
struct LoopOperator: Operator {
    let body: SubgraphPlan
    /// N and K.
    let carriedCount: Int
    let scanCount: Int
    let implicitStart: Int

    init(_ c: OperatorContext) throws {
        body = try c.subgraphPlan("body")
        let node = c.node
        carriedCount = node.inputs.count - 2
        guard carriedCount >= 0 else { throw KerfError.invalidModel("Loop takes at least 2 inputs (M and cond, either may be \"\")") }
        guard body.inputs.count == 2 + carriedCount else {
            throw KerfError.invalidModel("the body declares \(body.inputs.count) inputs; with \(carriedCount) loop-carried values "
                                         + "it must declare \(2 + carriedCount) (iteration number, condition, carried values)")
        }
        scanCount = body.outputs.count - 1 - carriedCount
        guard scanCount >= 0 else {
            throw KerfError.invalidModel("the body has \(body.outputs.count) outputs; with \(carriedCount) loop-carried values "
                                         + "it must have at least \(1 + carriedCount) (condition, carried values, scan values)")
        }
        guard node.outputs.count == carriedCount + scanCount else {
            throw KerfError.invalidModel("the node has \(node.outputs.count) outputs, but its body gives \(carriedCount) loop-carried "
                                         + "and \(scanCount) scan values")
        }
        implicitStart = node.inputs.count
    }

    func run(_ inputs: [Tensor?]) throws -> [Tensor] {
        var tripCount = Int64.max
        if let m = inputs.optional(0) {
            guard m.dtype == .int64, m.count == 1 else {
                throw KerfError.invalidArgument("the trip count M must be an int64 tensor of one element, got \(m.dtype) \(m.shape)")
            }
            tripCount = m.withElements(as: Int64.self) { $0[0] }
        }
        var conditionValue = inputs.optional(1) ?? Tensor(scalar: true)
        var carried = try (0..<carriedCount).map { try inputs.required(2 + $0, "loop-carried value \($0)") }
        var scans = [[Tensor]](repeating: [], count: scanCount)
        let implicit = inputs[min(implicitStart, inputs.count)...]
        var iteration: Int64 = 0
        var keepGoing = try condition(conditionValue, "cond")
        while keepGoing && iteration < tripCount {
            var results = try body.run([Tensor(scalar: iteration), conditionValue] + carried, implicit: implicit)
            guard results.count == 1 + carriedCount + scanCount else {
                throw KerfError.internal("the body returned \(results.count) values")
            }
            for k in (0..<scanCount).reversed() { scans[k].append(results.removeLast()) }
            for (k, value) in results[1...].enumerated() where value.dtype != carried[k].dtype {
                throw KerfError.invalidModel("loop-carried value \(k) changes dtype from \(carried[k].dtype) to \(value.dtype)")
            }
            carried = Array(results[1...])
            conditionValue = results[0]
            keepGoing = try condition(conditionValue, "the body's condition output")
            iteration += 1
        }
        let scanOutputs = try scans.enumerated().map { k, parts in
            try stackIterations(parts, axis: 0, declared: body.outputs[1 + carriedCount + k])
        }
        return carried + scanOutputs
    }
}
