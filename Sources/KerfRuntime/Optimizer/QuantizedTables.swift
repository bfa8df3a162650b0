import KerfCore
import KerfGraph

extension GraphOptimizer {
    /// Operators whose output element depends only on the same element of one run-time input
    /// (the other inputs being constants): a chain of them between DequantizeLinear and
    /// QuantizeLinear maps each 8-bit value to one 8-bit value.
    static let tableOperators: Set<String> = [
        "Add", "Sub", "Mul", "Div", "Pow", "Min", "Max", "Erf", "Sqrt", "Exp", "Log", "Neg", "Abs", "Reciprocal", "Relu",
        "Sigmoid", "Tanh", "Clip", "LeakyRelu", "HardSigmoid", "HardSwish", "Softplus", "Softsign", "Gelu", "Elu", "Selu",
        "Floor", "Ceil", "Round", "Identity",
    ]

    /// DequantizeLinear(Xq) -> a chain of `tableOperators` (each output read by the next alone,
    /// every other input a constant scalar or vector [C]) -> QuantizeLinear, per-tensor and 8-bit
    /// on both ends, becomes kerf.QuantizedTable (all constants scalars) or
    /// kerf.QuantizedChannelTable (vectors along the last axis: a bias, a LayerNorm's scale): the
    /// chain's own operators run on every byte value (of every channel) once, here, so a run
    /// gives byte for byte what they give. This is how ONNX Runtime's static files of
    /// transformers quantize the ops between their MatMuls (bias Add, GELU's Div, Erf, Add,
    /// LayerNorm's Mul and Add, attention's Div).
    static func fuseQuantizedTables(_ g: Graph, opsets: [OpsetImport], options: SessionOptions) {
        let m = Matcher(g), names = NameAllocator(g)
        let opset = opsets.first { $0.domain.isEmpty || $0.domain == "ai.onnx" }?.version ?? 0
        var patch = GraphPatch()
        // A chain starts at each reader of a DequantizeLinear (GELU's x feeds both its Div and
        // its Mul); the DequantizeLinear goes once nothing reads it (removeDeadNodes).
        for (di, dq) in g.nodes.enumerated() where dq.isDefaultDomain && dq.opType == "DequantizeLinear" && dq.outputs.count == 1 {
            guard dq.attribute("output_dtype") == nil, m.constants[dq.inputs[0]] == nil, perTensorParameters(m, dq) != nil else { continue }
            for first in g.nodes.indices where g.nodes[first].inputs.contains(dq.outputs[0]) && !patch.isRemoved(first) {
                guard let (chain, qi, channels, rank) = tableChain(g, m, dequantize: di, first: first),
                      chain.dropFirst().allSatisfy({ !patch.isRemoved($0) }), !patch.isRemoved(qi),
                      let table = byteTable(g, m, chain: chain + [qi], channels: channels, opset: opset, options: options) else { continue }
                let name = names.make(g.nodes[first].name + "_table")
                g.initializers.append(Initializer(name: name, tensor: table.bytes))
                var inputs = [dq.inputs[0], name]
                if channels > 1, chain.count == 2, let (k, shift) = affineForm(m, g.nodes[chain[1]], of: g.nodes[chain[0]].outputs[0]) {
                    let kName = names.make(name + "_k"), shiftName = names.make(name + "_shift")
                    g.initializers += [Initializer(name: kName, tensor: Tensor(shape: [channels], values: k)),
                                       Initializer(name: shiftName, tensor: Tensor(shape: [channels], values: shift))]
                    let q = g.nodes[qi]
                    inputs += [dq.inputs[1], dq.inputs[2], kName, shiftName, q.inputs[1], q.inputs[2]]
                }
                patch.remove(contentsOf: chain.dropFirst() + [qi])
                patch.replace(qi, with: Node(name: g.nodes[first].name + "_table", opType: channels == 1 ? "QuantizedTable" : "QuantizedChannelTable",
                                        domain: FusedQuantizedOps.domain, inputs: inputs, outputs: [g.nodes[qi].outputs[0]],
                                        attributes: [Attribute(name: "to", value: .int(Int64(table.type.rawValue))),
                                                     Attribute(name: "rank", value: .int(Int64(rank)))]))
            }
        }
        patch.apply(to: g)
        g.removeDeadNodes()  // the DequantizeLinears the tables replaced
        composeQuantizedTables(g)
    }

    /// The chain from DequantizeLinear `di` through its reader `first` to a QuantizeLinear, as
    /// `fuseQuantizedTables` takes it: the nodes (the DequantizeLinear first), the
    /// QuantizeLinear, the channel count of the chain's constant vectors (1: none) and their
    /// largest rank (the output's rank is at least that).
    private static func tableChain(_ g: Graph, _ m: Matcher, dequantize di: Int, first: Int)
        -> (chain: [Int], quantize: Int, channels: Int, rank: Int)? {
        var chain = [di], value = g.nodes[di].outputs[0], channels = 1, rank = 0
        var ni = first
        while true {
            let n = g.nodes[ni]
            guard n.isDefaultDomain, n.outputs.count == 1 else { return nil }
            if n.opType == "QuantizeLinear" {
                guard n.inputs.first == value, n.attribute("output_dtype") == nil, perTensorParameters(m, n) != nil else { return nil }
                return (chain, ni, channels, rank)
            }
            guard tableOperators.contains(n.opType), n.inputs.filter({ $0 == value }).count == 1 else { return nil }
            // The other inputs: constants whose dims are all 1 but the last (so the output has
            // X's shape, with leading 1s up to the constants' rank), one channel count among the vectors.
            let others = n.inputs.filter { $0 != value && !$0.isEmpty }.map { m.constants[$0] }
            guard others.allSatisfy({ $0 != nil && $0!.shape.dropLast().allSatisfy { $0 == 1 } }) else { return nil }
            rank = max(rank, others.map { $0!.rank }.max() ?? 0)
            let counts = Set(others.map { $0!.count }.filter { $0 != 1 })
            guard counts.count <= 1, counts.allSatisfy({ $0 > 0 && (channels == 1 || $0 == channels) }) else { return nil }
            channels = counts.first ?? channels
            chain.append(ni)
            value = n.outputs[0]
            guard m.readOnly(value, by: 1), let reader = g.nodes.firstIndex(where: { $0.inputs.contains(value) }) else { return nil }
            ni = reader
        }
    }

    /// kerf.QuantizedMatMul with a requantized output (no float bias, GELU, head layout or
    /// residual) read only by a kerf.QuantizedTable or QuantizedChannelTable: the table joins
    /// the product's epilogue. ONNX Runtime's static files have one after every MatMul with a bias.
    static func fuseProductTables(_ g: Graph) {
        let m = Matcher(g)
        var patch = GraphPatch()
        for (ti, table) in g.nodes.enumerated() where table.domain == FusedQuantizedOps.domain
            && (table.opType == "QuantizedTable" || table.opType == "QuantizedChannelTable") {
            guard let pi = m.producer[table.inputs[0]], !patch.isReplaced(pi), m.readOnly(table.inputs[0], by: 1) else { continue }
            guard var product = fusedMatMul(g.nodes[pi]), product.kind == .matMul, product.epilogue.quantization != nil,
                  !product.epilogue.hasFloatBias, product.epilogue.heads == nil, product.epilogue.residual == nil, product.epilogue.table == nil,
                  product.epilogue.activation != .gelu,  // a float output, quantized after the GELU
                  let stage = try? QuantizedEpilogue.Table(tableNode: table) else { continue }
            product.epilogue.table = stage
            product.outputs = table.outputs
            patch.replace(pi, with: product.node)
            patch.remove(ti)
        }
        patch.apply(to: g)
    }

    /// kerf.QuantizedTable -> kerf.QuantizedTable (the first read by the second alone) is one
    /// table: the second's entries in the order of the first's.
    static func composeQuantizedTables(_ g: Graph) {
        var changed = true
        while changed {
            changed = false
            let m = Matcher(g), names = NameAllocator(g)
            for (si, second) in g.nodes.enumerated() where second.domain == FusedQuantizedOps.domain && second.opType == "QuantizedTable" {
                guard let fi = m.producer[second.inputs[0]], fi != si, m.readOnly(second.inputs[0], by: 1) else { continue }
                let first = g.nodes[fi]
                guard first.domain == FusedQuantizedOps.domain, first.opType == "QuantizedTable",
                      let a = m.constants[first.inputs[1]], let b = m.constants[second.inputs[1]], a.count == 256, b.count == 256 else { continue }
                let outer = b.array(of: UInt8.self)
                let composed = a.array(of: UInt8.self).map { outer[Int($0)] }
                let name = names.make(second.name + "_composed")
                g.initializers.append(Initializer(name: name, tensor: Tensor(shape: [256], values: composed)))
                var fused = second
                fused.inputs = [first.inputs[0], name]
                // The output has at least the rank either table gives it.
                func rank(_ n: Node) -> Int64 { if case .int(let r)? = n.attribute("rank") { return r }; return 0 }
                fused.attributes = fused.attributes.filter { $0.name != "rank" } + [Attribute(name: "rank", value: .int(max(rank(first), rank(second))))]
                g.nodes[si] = fused
                g.nodes.remove(at: fi)
                changed = true
                break
            }
        }
    }

    /// Add, Sub or Mul of `value` and a constant vector c as value * k + shift: (1, c), (1, -c)
    /// or (-1, c) for c - value, (c, 0). The operator checks that this gives the table's bytes.
    private static func affineForm(_ m: Matcher, _ n: Node, of value: String) -> (k: [Float], shift: [Float])? {
        guard n.inputs.count == 2, let other = m.other(n, than: value), let t = m.constants[other], t.dtype == .float else { return nil }
        let c = t.array(of: Float.self)
        switch n.opType {
        case "Add": return (c.map { _ in 1 }, c)
        case "Sub": return n.inputs[0] == value ? (c.map { _ in 1 }, c.map { -$0 }) : (c.map { _ in -1 }, c)
        case "Mul": return (c, c.map { _ in 0 })
        default: return nil
        }
    }

    /// Runs the chain (DequantizeLinear first, QuantizeLinear last) on X = [256, channels] holding
    /// byte v in every channel of row v; returns the results as table [channels, 256] and the
    /// output type. Nil when an operator fails (the chain then stays as it is).
    private static func byteTable(_ g: Graph, _ m: Matcher, chain: [Int], channels: Int, opset: Int,
                                  options: SessionOptions) -> (bytes: Tensor, type: DType)? {
        let dq = g.nodes[chain[0]]
        guard let xType = m.constants[dq.inputs[2]]?.dtype else { return nil }
        guard var x = try? Tensor(uninitialized: xType, shape: channels == 1 ? [256] : [256, channels]) else { return nil }
        x.withMutableElements(as: UInt8.self) { for i in 0..<(256 * channels) { $0[i] = UInt8(i / channels) } }
        var value = x, previous = dq.inputs[0]
        for index in chain {
            let node = g.nodes[index]
            let args = node.inputs.map { $0.isEmpty ? nil : $0 == previous ? value : m.constants[$0] }
            let context = OperatorContext(node: node, opset: opset, constantInputs: args, options: options)
            guard let op = try? OperatorRegistry.makeOperator(context), let results = try? op.run(args), results.count == 1 else { return nil }
            value = results[0]
            previous = node.outputs[0]
        }
        guard value.dtype == .uint8 || value.dtype == .int8, value.count == 256 * channels else { return nil }
        let bytes = value.array(of: UInt8.self)
        var table = [UInt8](repeating: 0, count: 256 * channels)
        for v in 0..<256 { for c in 0..<channels { table[c * 256 + v] = bytes[v * channels + c] } }
        return (Tensor(shape: channels == 1 ? [256] : [channels, 256], values: table), value.dtype)
    }
}
