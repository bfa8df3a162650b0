import KerfCore

/// Recognizes the decomposed LayerNorm and GELU that `torch.onnx.export` writes before opsets
/// 17/20 and replaces each chain with the one ONNX node it computes (LayerNormalization, Gelu):
/// the session optimizer before running, training before differentiating (one fused kernel
/// forward and one backward instead of a chain of elementwise ops and their gradients).
extension Graph {
    /// mean = ReduceMean(x); d = x - mean; v = ReduceMean(d ^ 2); y = d / Sqrt(v + eps)
    /// [* gamma] [+ beta]  ->  LayerNormalization(x, gamma, beta, axis -1, epsilon eps).
    public func fuseDecomposedLayerNorm() {
        let g = self
        var patch = GraphPatch()
        let m = Matcher(g, constantNodes: true)
        for (di, div) in g.nodes.enumerated() where div.isDefaultDomain && div.opType == "Div" && div.inputs.count == 2 {
            let d = div.inputs[0], s = div.inputs[1]
            guard let (si, sqrt) = m.node(s, "Sqrt"), m.readOnly(s, by: 1),
                  let (ai, add) = m.node(sqrt.inputs[0], "Add"), m.readOnly(sqrt.inputs[0], by: 1),
                  let (vi, variance) = m.node(add.inputs[0], "ReduceMean"), m.readOnly(add.inputs[0], by: 1),
                  let epsilon = m.scalar(add.inputs[1]),
                  let (pi, pow) = m.node(variance.inputs[0], "Pow"), m.readOnly(variance.inputs[0], by: 1),
                  pow.inputs.count == 2, pow.inputs[0] == d, m.scalar(pow.inputs[1]) == 2,
                  let (subi, sub) = m.node(d, "Sub"), m.readOnly(d, by: 2),
                  let (mi, mean) = m.node(sub.inputs[1], "ReduceMean"), m.readOnly(sub.inputs[1], by: 1),
                  mean.inputs[0] == sub.inputs[0], m.isLastAxisMean(mean), m.isLastAxisMean(variance),
                  [si, ai, vi, pi, subi, mi].allSatisfy({ !patch.isRemoved($0) }) else { continue }
            let x = sub.inputs[0]
            var chain = [di, si, ai, vi, pi, subi, mi]
            var output = div.outputs[0]
            var gamma: String? = nil, beta: String? = nil
            // Optional affine tail: * gamma (a constant vector), + beta (a constant vector).
            if m.readOnly(output, by: 1), let mulIndex = g.nodes.firstIndex(where: { $0.isDefaultDomain && $0.opType == "Mul" && $0.inputs.contains(output) }),
               let scale = m.other(g.nodes[mulIndex], than: output), let t = m.constants[scale], t.dtype == .float, t.rank <= 1 {
                gamma = scale
                chain.append(mulIndex)
                output = g.nodes[mulIndex].outputs[0]
                if m.readOnly(output, by: 1), let addIndex = g.nodes.firstIndex(where: { $0.isDefaultDomain && $0.opType == "Add" && $0.inputs.contains(output) }),
                   let shift = m.other(g.nodes[addIndex], than: output), let b = m.constants[shift], b.dtype == .float, b.rank <= 1 {
                    beta = shift
                    chain.append(addIndex)
                    output = g.nodes[addIndex].outputs[0]
                }
            }
            guard chain.allSatisfy({ !patch.isRemoved($0) }) else { continue }
            var inputs = [x]
            if let gamma {
                inputs.append(gamma)
            } else {
                // Without a scale, LayerNormalization needs ones of the normalized size, known
                // only at run time: leave such chains alone.
                continue
            }
            if let beta { inputs.append(beta) }
            var fused = Node(name: div.name.isEmpty ? "fused_layernorm" : div.name + "_layernorm", opType: "LayerNormalization",
                             inputs: inputs, outputs: [output])
            fused.attributes = [Attribute(name: "axis", value: .int(-1)), Attribute(name: "epsilon", value: .float(epsilon))]
            patch.remove(contentsOf: chain)
            patch.replace(di, with: fused)
        }
        patch.apply(to: g)
    }

    /// y = (x * (Erf(x / sqrt 2) + 1)) * 0.5, in torch's export order  ->  Gelu(x).
    public func fuseDecomposedGelu() {
        let g = self
        var patch = GraphPatch()
        let m = Matcher(g, constantNodes: true)
        for (ei, erf) in g.nodes.enumerated() where erf.isDefaultDomain && erf.opType == "Erf" {
            guard let (divIndex, div) = m.node(erf.inputs[0], "Div"), m.readOnly(erf.inputs[0], by: 1), div.inputs.count == 2,
                  let root = m.scalar(div.inputs[1]), abs(root - Float(2).squareRoot()) < 1e-4,
                  m.readOnly(erf.outputs[0], by: 1),
                  let addIndex = g.nodes.firstIndex(where: { $0.isDefaultDomain && $0.opType == "Add" && $0.inputs.contains(erf.outputs[0]) }),
                  let one = m.other(g.nodes[addIndex], than: erf.outputs[0]), m.scalar(one) == 1 else { continue }
            let x = div.inputs[0], sum = g.nodes[addIndex].outputs[0]
            guard m.readOnly(sum, by: 1),
                  let mulIndex = g.nodes.firstIndex(where: { $0.isDefaultDomain && $0.opType == "Mul" && $0.inputs.contains(sum) }),
                  m.other(g.nodes[mulIndex], than: sum) == x, m.readOnly(g.nodes[mulIndex].outputs[0], by: 1),
                  let halfIndex = g.nodes.firstIndex(where: { $0.isDefaultDomain && $0.opType == "Mul" && $0.inputs.contains(g.nodes[mulIndex].outputs[0]) }),
                  let half = m.other(g.nodes[halfIndex], than: g.nodes[mulIndex].outputs[0]), m.scalar(half) == 0.5 else { continue }
            let chain = [divIndex, ei, addIndex, mulIndex, halfIndex]
            guard chain.allSatisfy({ !patch.isRemoved($0) }) else { continue }
            patch.remove(contentsOf: chain)
            patch.replace(halfIndex, with: Node(name: erf.name.isEmpty ? "fused_gelu" : erf.name + "_gelu", opType: "Gelu",
                                           inputs: [x], outputs: g.nodes[halfIndex].outputs))
        }
        patch.apply(to: g)
    }
}
