import KerfCore
import KerfGraph

/// What the rewrite did to one quantized node (for the report).
struct QuantizedNode {
    var target: QuantTarget
    var weightScales: [Float]
    var input: AffineParams?
    /// The value whose float and quantized versions are compared for SQNR: the node's output
    /// as its readers see it (the dequantized copy when its output, or its fused activation's,
    /// is quantized).
    var floatOutput: String
    var quantizedOutput: String
    var output: AffineParams?
}

/// Rewrites `g` (a float graph) into QDQ form:
/// - each planned activation T becomes T -> QuantizeLinear -> DequantizeLinear, read by the
///   readers the plan names (others keep reading T);
/// - each target's weight becomes an int8 initializer -> DequantizeLinear (per channel along
///   the output-channel axis, or per tensor), zero point 0;
/// - each target's bias becomes an int32 initializer -> DequantizeLinear with scale
///   input scale * weight scale, zero point 0.
func rewriteStatic(_ g: Graph, targets: [QuantTarget], plan: ActivationPlan, params: [String: AffineParams],
                   options: QuantizeOptions) throws -> [QuantizedNode] {
    let names = NameAllocator(g)
    let constants = Dictionary(g.initializers.map { ($0.name, $0.tensor) }, uniquingKeysWith: { a, _ in a })
    let activationType = options.activationType.dtype
    var dequantizedName: [String: String] = [:]
    var pairs: [String: [Node]] = [:]  // tensor -> its Q and DQ nodes

    for tensor in plan.tensors.sorted() {
        guard let p = params[tensor] else { continue }
        let scale = g.addConstant(tensor + "_scale", scaleTensor([p.scale]), names: names)
        let zero = g.addConstant(tensor + "_zero_point", zeroPointTensor(p.zeroPoint, dtype: activationType), names: names)
        let q = names.make(tensor + "_quantized"), dq = names.make(tensor + "_dequantized")
        pairs[tensor] = [
            Node(name: names.make(tensor + "_QuantizeLinear"), opType: "QuantizeLinear", inputs: [tensor, scale, zero], outputs: [q]),
            Node(name: names.make(tensor + "_DequantizeLinear"), opType: "DequantizeLinear", inputs: [q, scale, zero], outputs: [dq]),
        ]
        dequantizedName[tensor] = dq
    }

    var nodes = g.nodes
    // Readers named by the plan read the dequantized copies.
    for (tensor, readers) in plan.readers {
        guard let dq = dequantizedName[tensor] else { continue }
        for i in readers {
            nodes[i].inputs = nodes[i].inputs.map { $0 == tensor ? dq : $0 }
        }
    }

    var weightNodes: [Int: [Node]] = [:]
    var results: [QuantizedNode] = []
    var weightCache: [String: (name: String, scales: [Float])] = [:]
    for t in targets {
        var extra: [Node] = []
        let axis = options.perChannel ? t.channelAxis : nil
        let key = "\(t.weight)|\(axis.map(String.init) ?? "tensor")"
        let weight: (name: String, scales: [Float])
        if let cached = weightCache[key] {
            weight = cached
        } else {
            let q = try quantizeWeight(constants[t.weight]!, axis: axis)
            let node = g.dequantizedConstant(t.weight, values: q.values, scales: q.scales, axis: axis ?? 0, names: names)
            extra.append(node)
            weight = (node.outputs[0], q.scales)
            weightCache[key] = weight
        }
        nodes[t.index].inputs[1] = weight.name

        let inputParams = params[t.node.inputs[0]]
        if let biasName = t.bias, let b = constants[biasName], let inputParams {
            let q = quantizeBias(b, inputScale: inputParams.scale, weightScales: weight.scales)
            let node = g.dequantizedConstant(biasName, values: q.values, scales: q.scales, axis: 0, names: names)
            extra.append(node)
            nodes[t.index].inputs[2] = node.outputs[0]
        }
        weightNodes[t.index] = extra

        // The value readers see: the end of the node's bias/activation tail.
        let output = plan.tailOutput[t.index] ?? t.node.outputs[0]
        results.append(QuantizedNode(target: t, weightScales: weight.scales, input: inputParams, floatOutput: output,
                                     quantizedOutput: dequantizedName[output] ?? output, output: params[output]))
    }

    // Emit in order: QDQ pairs of graph inputs first, then each node preceded by the
    // DequantizeLinear of its weight and bias and followed by the pairs of its outputs.
    var ordered: [Node] = []
    for input in g.inputs { ordered += pairs[input.name] ?? [] }
    for (i, n) in nodes.enumerated() {
        ordered += weightNodes[i] ?? []
        ordered.append(n)
        for o in n.outputs { ordered += pairs[o] ?? [] }
    }
    g.nodes = ordered
    g.removeUnreadInitializers()
    return results
}
