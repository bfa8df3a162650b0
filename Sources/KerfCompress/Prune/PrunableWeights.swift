import KerfCore

/// How a weight's elements line up along the dimension its consumer reduces over: element
/// `(o, r, i)` lives at `o * length * stride + r * stride + i`, with `r` in `0..<length` the
/// reduction index, `o` in `0..<outer` and `i` in `0..<stride`.
struct ReductionLayout: Equatable {
    var outer: Int
    var length: Int
    var stride: Int
}

/// A float32 initializer that Conv, Gemm or MatMul uses as a weight operand.
struct PrunableWeight {
    var name: String
    /// The first node that consumes it as a weight.
    var node: Node
    /// Its index in `graph.initializers`.
    var index: Int
    var layout: ReductionLayout
}

/// The weight operand of `node` (input index) and its reduction layout for `shape`, or nil
/// when the node has no prunable weight operand there.
func weightLayout(of node: Node, input: Int, shape: [Int], isConstant: (String) -> Bool) -> ReductionLayout? {
    guard node.isDefaultDomain else { return nil }
    switch (node.opType, input) {
    case ("Conv", 1):
        guard shape.count >= 3 else { return nil }
        return ReductionLayout(outer: shape[0], length: shape[1], stride: shape.dropFirst(2).reduce(1, *))
    case ("Gemm", 1):
        guard shape.count == 2 else { return nil }
        let transB: Bool
        if case .int(let t)? = node.attribute("transB") { transB = t != 0 } else { transB = false }
        return transB ? ReductionLayout(outer: shape[0], length: shape[1], stride: 1)
                      : ReductionLayout(outer: 1, length: shape[0], stride: shape[1])
    case ("MatMul", 1):
        if shape.count == 1 { return ReductionLayout(outer: 1, length: shape[0], stride: 1) }
        guard shape.count >= 2 else { return nil }
        return ReductionLayout(outer: shape.dropLast(2).reduce(1, *), length: shape[shape.count - 2], stride: shape[shape.count - 1])
    case ("MatMul", 0):
        // A constant left operand (the right one computed): reduce over its last dimension.
        guard shape.count >= 1, node.inputs.count > 1, !isConstant(node.inputs[1]) else { return nil }
        return ReductionLayout(outer: shape.dropLast().reduce(1, *), length: shape[shape.count - 1], stride: 1)
    default:
        return nil
    }
}

/// The weights `options` lets pruning change, in initializer order. Weights that are
/// candidates but excluded (by name, size or dtype) are listed in `skipped` with the reason.
func prunableWeights(_ graph: Graph, options: PruneOptions, skipped: inout [PruneReport.Skipped]) -> [PrunableWeight] {
    let index = Dictionary(graph.initializers.enumerated().map { ($1.name, $0) }, uniquingKeysWith: { a, _ in a })
    let outputs = Set(graph.outputs.map(\.name))
    var found: [String: PrunableWeight] = [:]
    var order: [String] = []
    var rejected = Set<String>()
    for node in graph.nodes {
        for (input, name) in node.inputs.enumerated() where !name.isEmpty {
            guard let i = index[name], found[name] == nil, !rejected.contains(name) else { continue }
            let tensor = graph.initializers[i].tensor
            guard let layout = weightLayout(of: node, input: input, shape: tensor.shape, isConstant: { index[$0] != nil }) else { continue }
            var reason: String?
            if tensor.dtype != .float {
                reason = "dtype \(tensor.dtype): only float32 weights are pruned"
            } else if outputs.contains(name) {
                reason = "it is also a graph output"
            } else if options.exclude.excludes(weight: name, node: node) {
                reason = "excluded"
            } else if tensor.count < options.minElements {
                reason = "\(tensor.count) elements, fewer than the minimum \(options.minElements)"
            }
            if let reason {
                rejected.insert(name)
                skipped.append(PruneReport.Skipped(name: name, reason: reason))
                continue
            }
            found[name] = PrunableWeight(name: name, node: node, index: i, layout: layout)
            order.append(name)
        }
    }
    return order.map { found[$0]! }
}
