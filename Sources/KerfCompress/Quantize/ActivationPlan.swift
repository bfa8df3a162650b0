import KerfCore

/// Which float activations of a static (QDQ) graph get a QuantizeLinear/DequantizeLinear pair,
/// and which readers read the dequantized copy.
///
/// A tensor is quantized when some reader wants it in int8: a quantized node wants its data
/// input; a data-movement op (Reshape, Transpose, Flatten, Squeeze, Unsqueeze, MaxPool) and
/// Relu/Clip want their input when their own output is quantized; Add and Concat want all their
/// inputs when their output is quantized and none of them is a constant. A quantized node's
/// tail — an Add of a constant (a MatMul's bias), then a Relu or Clip, each reading the previous
/// output privately — runs with it: the pair goes after the tail, not inside it.
struct ActivationPlan {
    /// Quantized tensor -> the node indices that read its dequantized copy.
    var readers: [String: Set<Int>] = [:]
    /// Output -> input of data-movement ops: the output takes the input's parameters (the op
    /// moves values without changing them, so one scale serves both).
    var sameParameters: [String: String] = [:]
    /// Quantized node index -> the value its tail ends in (its own output when it has no tail).
    var tailOutput: [Int: String] = [:]

    var tensors: Set<String> { Set(readers.keys) }

    init(_ graph: Graph, targets: [QuantTarget]) {
        let targetIndex = Set(targets.map(\.index))
        let fed = Set(graph.inputs.map(\.name))
        let constants = Set(graph.initializers.map(\.name)).subtracting(fed)
        var producer: [String: Int] = [:], readerCount: [String: Int] = [:]
        for (i, n) in graph.nodes.enumerated() {
            for o in n.outputs where !o.isEmpty { producer[o] = i }
            for x in n.inputs where !x.isEmpty { readerCount[x, default: 0] += 1 }
        }
        let graphOutputs = Set(graph.outputs.map(\.name))
        var readerOf: [String: Int] = [:]
        for (i, n) in graph.nodes.enumerated() { for x in n.inputs where readerCount[x] == 1 { readerOf[x] = i } }
        /// The node reading `value` alone, when it is a default-domain `ops` node.
        func soleReader(_ value: String, _ ops: Set<String>) -> Int? {
            guard !graphOutputs.contains(value), let r = readerOf[value], graph.nodes[r].isDefaultDomain,
                  ops.contains(graph.nodes[r].opType) else { return nil }
            return r
        }
        var tail = Set<Int>()
        for t in targetIndex {
            var output = graph.nodes[t].outputs[0]
            if let add = soleReader(output, ["Add"]), graph.nodes[add].inputs.count == 2,
               graph.nodes[add].inputs.contains(where: { constants.contains($0) }) {
                tail.insert(add)
                output = graph.nodes[add].outputs[0]
            }
            if let act = soleReader(output, ["Relu", "Clip"]), graph.nodes[act].inputs.first == output {
                tail.insert(act)
                output = graph.nodes[act].outputs[0]
            }
            tailOutput[t] = output
        }
        // Walk backwards so a node's output is decided before its inputs.
        for i in graph.nodes.indices.reversed() {
            let n = graph.nodes[i]
            guard n.isDefaultDomain else { continue }
            if targetIndex.contains(i) {
                readers[n.inputs[0], default: []].insert(i)
                continue
            }
            guard let y = n.outputs.first, readers[y] != nil, !tail.contains(i) else { continue }
            switch n.opType {
            case "Reshape", "Transpose", "Flatten", "Squeeze", "Unsqueeze", "MaxPool":
                guard n.outputs.filter({ !$0.isEmpty }).count == 1 else { continue }
                readers[n.inputs[0], default: []].insert(i)
                sameParameters[y] = n.inputs[0]
            case "Relu", "Clip":
                readers[n.inputs[0], default: []].insert(i)
            case "Add", "Concat":
                let inputs = n.inputs.filter { !$0.isEmpty }
                if inputs.allSatisfy({ !constants.contains($0) }) {
                    for x in inputs { readers[x, default: []].insert(i) }
                }
            default:
                break
            }
        }
    }
}
