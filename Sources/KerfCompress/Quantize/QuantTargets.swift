import KerfCore

/// A node whose weight is quantized: Conv (W[M, C, kh, kw]), MatMul (B[K, N]) or Gemm (B).
struct QuantTarget {
    var index: Int
    var node: Node
    /// The constant float weight (input 1).
    var weight: String
    /// The weight's output-channel axis: 0 for Conv and transB Gemm, 1 for MatMul and Gemm.
    var channelAxis: Int
    /// A constant float bias of one value per output channel (Conv input 2, Gemm C with beta 1).
    var bias: String?
}

/// A node left in float, and why.
struct Skip {
    var name: String
    var reason: String
}

/// The nodes `options` asks to quantize in `graph`, and the ones passed over with a reason.
/// Throws when a chosen weight holds NaN or infinity.
func quantTargets(_ graph: Graph, options: QuantizeOptions) throws -> (targets: [QuantTarget], skipped: [Skip]) {
    let fed = Set(graph.inputs.map(\.name))
    var constants: [String: Tensor] = [:]
    for i in graph.initializers where !fed.contains(i.name) { constants[i.name] = i.tensor }
    var targets: [QuantTarget] = [], skipped: [Skip] = []
    for (index, node) in graph.nodes.enumerated() where node.isDefaultDomain && ["Conv", "MatMul", "Gemm"].contains(node.opType) {
        func skip(_ reason: String) { skipped.append(Skip(name: node.name.isEmpty ? node.outputs[0] : node.name, reason: reason)) }
        guard options.opTypes.contains(node.opType) else { skip("op type \(node.opType) not selected"); continue }
        guard node.inputs.count >= 2, let w = constants[node.inputs[1]] else {
            skip("its weight is not a constant initializer")
            continue
        }
        guard w.dtype == .float else { skip("weight is \(w.dtype), not float32"); continue }
        if options.exclude.excludes(weight: node.inputs[1], node: node) { skip("excluded"); continue }
        if constants[node.inputs[0]] != nil { skip("both inputs are constants"); continue }
        var target = QuantTarget(index: index, node: node, weight: node.inputs[1], channelAxis: 0, bias: nil)
        switch node.opType {
        case "Conv":
            guard options.mode == .static else {
                skip("dynamic mode never emits ConvInteger (ONNX Runtime cannot run it); use static mode")
                continue
            }
            guard w.rank >= 3 else { skip("Conv weight of rank \(w.rank)"); continue }
            target.bias = bias(node, input: 2, channels: w.shape[0], constants)
        case "MatMul":
            guard w.rank == 2 else { skip("MatMul weight of rank \(w.rank) (only 2-D weights are quantized)"); continue }
            target.channelAxis = 1
        default:  // Gemm
            guard w.rank == 2 else { skip("Gemm weight of rank \(w.rank)"); continue }
            if case .int(let t)? = node.attribute("transA"), t != 0 { skip("Gemm with transA"); continue }
            if case .float(let a)? = node.attribute("alpha"), a != 1 { skip("Gemm with alpha \(a)"); continue }
            if case .float(let b)? = node.attribute("beta"), b != 1 { skip("Gemm with beta \(b)"); continue }
            let transB: Bool
            if case .int(let t)? = node.attribute("transB") { transB = t != 0 } else { transB = false }
            target.channelAxis = transB ? 0 : 1
            if node.inputs.count > 2, !node.inputs[2].isEmpty, constants[node.inputs[2]] == nil {
                skip("Gemm whose C is not a constant")
                continue
            }
            target.bias = bias(node, input: 2, channels: w.shape[target.channelAxis], constants)
        }
        guard w.withElements(as: Float.self, { $0.allSatisfy(\.isFinite) }) else {
            throw KerfError.invalidModel("weight '\(node.inputs[1])' of \(node.label) contains NaN or infinity")
        }
        targets.append(target)
    }
    return (targets, skipped)
}

/// Input `input` of `node` when it is a constant float vector of `channels` values.
private func bias(_ node: Node, input: Int, channels: Int, _ constants: [String: Tensor]) -> String? {
    guard node.inputs.count > input, let b = constants[node.inputs[input]], b.dtype == .float, b.rank == 1, b.count == channels else {
        return nil
    }
    return node.inputs[input]
}
