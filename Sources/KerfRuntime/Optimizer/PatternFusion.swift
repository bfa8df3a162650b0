import FoundationEssentials
import KerfCore
import KerfGraph

/// Recognizes chains of ops that one fused kernel runs (the decomposed LayerNorm and GELU are
/// recognized in KerfGraph's `DecomposedOps.swift`).
extension GraphOptimizer {
    /// Softmax over the last axis of Add(Div(x, c) or Mul(x, c), mask), c a float scalar constant
    /// (an attention's scaled, masked scores) -> kerf.ScaledMaskedSoftmax(x, c, mask): one pass
    /// over the scores instead of three (Ops/ScaledMaskedSoftmax.swift).
    static func fuseScaledMaskedSoftmax(_ g: Graph, opset: Int) {
        var patch = GraphPatch()
        let m = Matcher(g)
        for (si, softmax) in g.nodes.enumerated() where softmax.isDefaultDomain && softmax.opType == "Softmax" && softmax.inputs.count == 1 {
            var axis: Int64 = opset >= 13 ? -1 : 1
            if case .int(let a)? = softmax.attribute("axis") { axis = a }
            guard axis == -1, let (ai, add) = m.node(softmax.inputs[0], "Add"), m.readOnly(softmax.inputs[0], by: 1), add.inputs.count == 2 else { continue }
            for (k, scaled) in add.inputs.enumerated() {
                guard let pi = m.producer[scaled], m.readOnly(scaled, by: 1), add.inputs[1 - k] != scaled else { continue }
                let p = g.nodes[pi]
                guard p.isDefaultDomain, p.opType == "Div" || p.opType == "Mul", p.inputs.count == 2 else { continue }
                let constantIndex = p.opType == "Div" ? 1 : (m.scalar(p.inputs[1]) != nil ? 1 : 0)
                guard let c = m.constants[p.inputs[constantIndex]], c.dtype == .float, c.count == 1, c.rank <= 1,
                      m.constants[p.inputs[1 - constantIndex]] == nil else { continue }
                let chain = [pi, ai, si]
                guard chain.allSatisfy({ !patch.isRemoved($0) }) else { continue }
                patch.remove(contentsOf: chain)
                patch.replace(si, with: Node(name: softmax.name + "_masked", opType: "ScaledMaskedSoftmax", domain: FusedQuantizedOps.domain,
                                        inputs: [p.inputs[1 - constantIndex], p.inputs[constantIndex], add.inputs[1 - k]],
                                        outputs: softmax.outputs,
                                        attributes: [Attribute(name: "multiply", value: .int(p.opType == "Mul" ? 1 : 0))]))
                break
            }
        }
        patch.apply(to: g)
    }
}
