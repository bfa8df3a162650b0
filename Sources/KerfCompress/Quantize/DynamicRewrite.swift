import KerfCore
#if canImport(Glibc)
import Glibc
#endif
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

/// A constant Gather table `quantizeEmbeddings` turns into int8: the Gather's index, the
/// table's name, and its int8 form.
struct EmbeddingTable {
    var index: Int
    var name: String
    var quantized: QuantizedWeight
}

/// The constant float Gather tables of `g` that `options.quantizeEmbeddings` selects, and the
/// tables the default (nil) leaves in float, with why.
func embeddingTables(_ g: Graph, options: QuantizeOptions) throws -> (tables: [EmbeddingTable], float: [QuantizeReport.FloatNode]) {
    guard options.quantizeEmbeddings != false else { return ([], []) }
    let fed = Set(g.inputs.map(\.name))
    let constants = Dictionary(g.initializers.filter { !fed.contains($0.name) }.map { ($0.name, $0.tensor) }, uniquingKeysWith: { a, _ in a })
    var readers: [String: [Node]] = [:]
    for n in g.nodes { for x in Set(n.inputs) { readers[x, default: []].append(n) } }
    for o in g.outputs { readers[o.name, default: []].append(Node(name: "graph output", opType: "output", inputs: [], outputs: [])) }
    var tables: [EmbeddingTable] = [], float: [QuantizeReport.FloatNode] = []
    var quantized: [String: QuantizedWeight] = [:]
    for (i, n) in g.nodes.enumerated() where n.isDefaultDomain && n.opType == "Gather" && n.inputs.count == 2 {
        let name = n.inputs[0]
        guard let table = constants[name], table.dtype == .float, table.rank >= 2,
              !options.exclude.excludes(weight: name, node: n),
              table.withElements(as: Float.self, { $0.allSatisfy(\.isFinite) }) else { continue }
        if let q = quantized[name] {
            tables.append(EmbeddingTable(index: i, name: name, quantized: q))
            continue
        }
        let q = try quantizeWeight(table, axis: nil)
        if options.quantizeEmbeddings == nil {
            if let other = readers[name]?.first(where: { !($0.isDefaultDomain && $0.opType == "Gather") }) {
                if !float.contains(where: { $0.name == name }) {
                    float.append(.init(name: name, reason: "embedding table also read by \(other.label): kept float (pass quantize embeddings to force)"))
                }
                continue
            }
            let sqnr = tableSQNR(table, q)
            guard sqnr >= options.embeddingMinimumSQNR else {
                float.append(.init(name: name, reason: "embedding table: int8 SQNR \((sqnr * 10).rounded() / 10) dB < \(options.embeddingMinimumSQNR) dB"))
                continue
            }
        }
        quantized[name] = q
        tables.append(EmbeddingTable(index: i, name: name, quantized: q))
    }
    return (tables, float)
}

/// 10·log10(Σw² / Σ(w − scale·q)²) of a per-tensor int8 table (200 for an exact one).
private func tableSQNR(_ table: Tensor, _ q: QuantizedWeight) -> Double {
    let scale = Double(q.scales[0])
    var signal = 0.0, noise = 0.0
    table.withElements(as: Float.self) { w in
        q.values.withElements(as: Int8.self) { v in
            for i in 0..<w.count {
                let x = Double(w[i]), d = x - scale * Double(v[i])
                signal += x * x
                noise += d * d
            }
        }
    }
    return noise == 0 ? 200 : 10 * log10(max(signal, .leastNonzeroMagnitude) / noise)
}

/// Stores the Gather tables `embeddingTables` selects as int8: each lookup gathers int8 rows and
/// dequantizes them (DequantizeLinear(Gather(Tq), scale, 0)). Returns the tables quantized and
/// those kept in float, with why.
func quantizeEmbeddings(_ g: Graph, options: QuantizeOptions) throws -> (quantized: [String], float: [QuantizeReport.FloatNode]) {
    let names = NameAllocator(g)
    let (tables, float) = try embeddingTables(g, options: options)
    var replacement: [Int: [Node]] = [:]
    var stored: [String: String] = [:]  // table -> its int8 initializer
    for t in tables {
        let n = g.nodes[t.index]
        var dequantize = g.dequantizedConstant(t.name, values: t.quantized.values, scales: t.quantized.scales, axis: 0, names: names)
        if let existing = stored[t.name] {
            g.initializers.removeAll { $0.name == dequantize.inputs[0] }
            dequantize.inputs[0] = existing
        }
        stored[t.name] = dequantize.inputs[0]
        var gather = n
        gather.inputs[0] = dequantize.inputs[0]
        gather.outputs = [names.make(n.outputs[0] + "_quantized")]
        dequantize.inputs[0] = gather.outputs[0]
        dequantize.outputs = [n.outputs[0]]
        replacement[t.index] = [gather, dequantize]
    }
    g.nodes = g.nodes.enumerated().flatMap { i, n in replacement[i] ?? [n] }
    g.removeUnreadInitializers()
    var seen = Set<String>()
    return (tables.map(\.name).filter { seen.insert($0).inserted }, float)
}
