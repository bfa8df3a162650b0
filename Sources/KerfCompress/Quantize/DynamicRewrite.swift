import KerfCore
import KerfGraph

/// Rewrites each MatMul/Gemm target of `g` into ONNX Runtime's dynamic int8 form:
///   DynamicQuantizeLinear(X) -> Xq, Xscale, Xzp (one per X, shared by its quantized readers)
///   MatMulInteger(Xq, Wq int8 [K, N], Xzp, Wzp int8) -> int32
///   Cast(to float) ; Mul(Xscale, Wscale) ; Mul(., .) [ ; Add(bias) ]
/// The weight is transposed to [K, N] for a transB Gemm; Wscale/Wzp have N entries per channel,
/// one per tensor.
func rewriteDynamic(_ g: Graph, targets: [QuantTarget], options: QuantizeOptions) throws -> [QuantizedNode] {
    let names = NameAllocator(g)
    let constants = Dictionary(g.initializers.map { ($0.name, $0.tensor) }, uniquingKeysWith: { a, _ in a })
    var replacement: [Int: [Node]] = [:]
    var quantizedInputs: [String: (q: String, scale: String, zero: String)] = [:]
    var weightCache: [String: (q: String, scale: String, zero: String, scales: [Float])] = [:]
    var results: [QuantizedNode] = []

    for t in targets {
        var emitted: [Node] = []
        let x = t.node.inputs[0]
        let xq: (q: String, scale: String, zero: String)
        if let known = quantizedInputs[x] {
            xq = known
        } else {
            xq = (names.make(x + "_quantized"), names.make(x + "_scale"), names.make(x + "_zero_point"))
            emitted.append(Node(name: names.make(x + "_DynamicQuantizeLinear"), opType: "DynamicQuantizeLinear",
                                inputs: [x], outputs: [xq.q, xq.scale, xq.zero]))
            quantizedInputs[x] = xq
        }

        let transposed = t.channelAxis == 0  // Gemm with transB: B is [N, K]
        let key = t.weight + (transposed ? "|T" : "") + (options.perChannel ? "|channel" : "|tensor")
        let w: (q: String, scale: String, zero: String, scales: [Float])
        if let cached = weightCache[key] {
            w = cached
        } else {
            var weight = constants[t.weight]!
            if transposed { weight = transpose2D(weight) }
            let q = try quantizeWeight(weight, axis: options.perChannel ? 1 : nil)
            let perColumn = q.scales.count > 1 ? q.scales.count : nil
            w = (g.addConstant(t.weight + "_quantized", q.values, names: names),
                 g.addConstant(t.weight + "_scale", scaleTensor(q.scales), names: names),
                 g.addConstant(t.weight + "_zero_point", zeroPointTensor(0, dtype: .int8, count: perColumn), names: names),
                 q.scales)
            weightCache[key] = w
        }

        let base = t.node.name.isEmpty ? t.node.outputs[0] : t.node.name
        let y = t.node.outputs[0]
        let product = names.make(base + "_MatMulInteger_output"), cast = names.make(base + "_Cast_output")
        let scale = names.make(base + "_scale"), hasBias = t.node.opType == "Gemm" && t.node.inputs.count > 2 && !t.node.inputs[2].isEmpty
        let scaled = hasBias ? names.make(base + "_scaled_output") : y
        emitted += [
            Node(name: names.make(base + "_MatMulInteger"), opType: "MatMulInteger", inputs: [xq.q, w.q, xq.zero, w.zero], outputs: [product]),
            Node(name: names.make(base + "_Cast"), opType: "Cast", inputs: [product], outputs: [cast],
                 attributes: [Attribute(name: "to", value: .int(Int64(DType.float.rawValue)))]),
            Node(name: names.make(base + "_scale_Mul"), opType: "Mul", inputs: [xq.scale, w.scale], outputs: [scale]),
            Node(name: names.make(base + "_output_Mul"), opType: "Mul", inputs: [cast, scale], outputs: [scaled]),
        ]
        if hasBias {
            emitted.append(Node(name: names.make(base + "_bias_Add"), opType: "Add", inputs: [scaled, t.node.inputs[2]], outputs: [y]))
        }
        replacement[t.index] = emitted
        results.append(QuantizedNode(target: t, weightScales: w.scales, input: nil, floatOutput: y, quantizedOutput: y, output: nil))
    }
    g.nodes = g.nodes.enumerated().flatMap { i, n in replacement[i] ?? [n] }
    g.removeUnreadInitializers()
    return results
}

/// The transpose of a 2-D float tensor.
func transpose2D(_ t: Tensor) -> Tensor {
    let rows = t.shape[0], cols = t.shape[1]
    let v = t.array(of: Float.self)
    var out = [Float](repeating: 0, count: v.count)
    for r in 0..<rows { for c in 0..<cols { out[c * rows + r] = v[r * cols + c] } }
    return Tensor(shape: [cols, rows], values: out)
}

/// Rewrites constant float Gather tables (embeddings) of `g` to int8: Gather(Tq) ->
/// DequantizeLinear(scale, 0), one symmetric scale per table. Returns the tables rewritten.
func quantizeEmbeddings(_ g: Graph, options: QuantizeOptions) throws -> [(node: Node, scale: Float)] {
    let names = NameAllocator(g)
    let fed = Set(g.inputs.map(\.name))
    let constants = Dictionary(g.initializers.filter { !fed.contains($0.name) }.map { ($0.name, $0.tensor) }, uniquingKeysWith: { a, _ in a })
    var done: [(Node, Float)] = []
    var replacement: [Int: [Node]] = [:]
    for (i, n) in g.nodes.enumerated() where n.isDefaultDomain && n.opType == "Gather" && n.inputs.count == 2 {
        guard let table = constants[n.inputs[0]], table.dtype == .float, table.rank >= 2,
              !options.exclude.excludes(weight: n.inputs[0], node: n),
              table.withElements(as: Float.self, { $0.allSatisfy(\.isFinite) }) else { continue }
        let q = try quantizeWeight(table, axis: nil)
        // Gather the int8 rows, then dequantize them: DequantizeLinear(Gather(Tq), scale, 0).
        var dequantize = g.dequantizedConstant(n.inputs[0], values: q.values, scales: q.scales, axis: 0, names: names)
        var gather = n
        gather.inputs[0] = dequantize.inputs[0]
        gather.outputs = [names.make(n.outputs[0] + "_quantized")]
        dequantize.inputs[0] = gather.outputs[0]
        dequantize.outputs = [n.outputs[0]]
        replacement[i] = [gather, dequantize]
        done.append((n, q.scales[0]))
    }
    g.nodes = g.nodes.enumerated().flatMap { i, n in replacement[i] ?? [n] }
    g.removeUnreadInitializers()
    return done
}
