import KerfCore

/// Rewrites whose result is plain ONNX that any runtime runs and that never change what the
/// graph computes (beyond float rounding of folded BatchNorm scales). Kerf's session optimizer
/// applies them first; compression tools apply them to the graph they rewrite (quantizing a
/// Conv whose BatchNorm stays float would quantize the wrong tensor).
extension Graph {
    /// Identity and inference Dropout removed, BatchNormalization after Conv folded into the
    /// Conv, dead nodes and unread initializers dropped.
    public func applyPortableRewrites(opset: Int) {
        removePassThroughNodes()
        foldBatchNormIntoConv(opset: opset)
        removeDeadNodes()
    }

    /// Identity and inference Dropout forward their input: readers are rewired to it, unless
    /// the node's output is a graph output or read by a subgraph (names must stay) or Dropout's
    /// mask is read.
    public func removePassThroughNodes() {
        let usage = Usage(self)
        var rename: [String: String] = [:]
        nodes.removeAll { n in
            guard n.isDefaultDomain, n.opType == "Identity" || n.opType == "Dropout", let input = n.inputs.first, !input.isEmpty,
                  let output = n.outputs.first, !usage.outputs.contains(output), !usage.readBySubgraphs.contains(output) else { return false }
            if n.opType == "Dropout" {
                if n.outputs.count > 1 && !n.outputs[1].isEmpty && (usage.readers[n.outputs[1]] ?? 0) > 0 { return false }
                if n.inputs.count > 2 && !n.inputs[2].isEmpty { return false }  // training_mode given at run time
                if case .int(let t)? = n.attribute("training_mode"), t != 0 { return false }
            }
            rename[output] = rename[input] ?? input
            return true
        }
        redirectReaders(rename)
    }

    /// An Identity that copies an intermediate value to a graph output is removed: the value's
    /// producer writes the graph output directly and the value's readers read it. Only when the
    /// value is not itself a graph input, output or initializer, and no node has a subgraph
    /// (which could read the value by name).
    public func forwardIdentityOutputs() {
        guard !nodes.contains(where: \.hasSubgraph) else { return }
        let outputNames = Set(outputs.map(\.name))
        var fixed = Set(inputs.map(\.name)).union(initializers.map(\.name)).union(outputNames)
        let producer = producers()
        var removed = Set<Int>()
        for (i, n) in nodes.enumerated() {
            guard n.isDefaultDomain, n.opType == "Identity", n.inputs.count == 1, n.outputs.count == 1,
                  outputNames.contains(n.outputs[0]), !fixed.contains(n.inputs[0]), let p = producer[n.inputs[0]],
                  !removed.contains(p) else { continue }
            let value = n.inputs[0], output = n.outputs[0]
            nodes[p].outputs = nodes[p].outputs.map { $0 == value ? output : $0 }
            for k in nodes.indices { nodes[k].inputs = nodes[k].inputs.map { $0 == value ? output : $0 } }
            fixed.insert(value)  // gone: a second Identity of it must not match
            removed.insert(i)
        }
        removeNodes(at: removed)
    }

    /// Conv followed by inference BatchNormalization becomes one Conv with scaled weights:
    /// W'[m] = W[m] * s[m], b'[m] = (b[m] - mean[m]) * s[m] + beta[m], s = gamma / sqrt(var + eps).
    /// Only a plain ONNX Conv folds (no attribute of Kerf's own `kerf.` namespace). A weight that
    /// only the folded Conv read is dropped at once, so that the graph holds one copy of each
    /// layer's weights at a time, not the old and the new set.
    public func foldBatchNormIntoConv(opset: Int) {
        let usage = Usage(self)
        let producer = producers()
        var c = constantInitializers()  // the only other reference to the graph's constants here
        let fed = Set(inputs.map(\.name))
        let names = NameAllocator(self)
        var patch = GraphPatch()
        for (bi, bn) in nodes.enumerated() where bn.isDefaultDomain && bn.opType == "BatchNormalization" {
            guard bn.outputs.filter({ !$0.isEmpty }).count == 1, bn.inputs.count == 5,
                  let ci = producer[bn.inputs[0]], !patch.touches(ci), usage.isPrivate(bn.inputs[0]) else { continue }
            if case .int(let t)? = bn.attribute("training_mode"), t != 0 { continue }
            var conv = nodes[ci]
            guard conv.isDefaultDomain, conv.opType == "Conv", !conv.attributes.contains(where: { $0.name.hasPrefix("kerf.") }),
                  conv.inputs.count >= 2, let w = c[conv.inputs[1]], w.dtype == .float, w.rank >= 3 else { continue }
            let m = w.shape[0]
            let params = bn.inputs[1...].map { c[$0] }
            guard params.allSatisfy({ $0 != nil && $0!.dtype == .float && $0!.count == m }) else { continue }
            let bias = conv.inputs.count > 2 && !conv.inputs[2].isEmpty ? c[conv.inputs[2]] : nil
            if conv.inputs.count > 2 && !conv.inputs[2].isEmpty && (bias == nil || bias!.dtype != .float || bias!.count != m) { continue }
            var epsilon: Float = 1e-5
            if case .float(let e)? = bn.attribute("epsilon") { epsilon = e }
            let gamma = params[0]!.array(of: Float.self), beta = params[1]!.array(of: Float.self)
            let mean = params[2]!.array(of: Float.self), variance = params[3]!.array(of: Float.self)
            let oldBias = bias?.array(of: Float.self) ?? [Float](repeating: 0, count: m)
            let per = w.count / m
            guard var newW = try? Tensor(uninitialized: .float, shape: w.shape) else { continue }  // then runs unfolded
            var newB = [Float](repeating: 0, count: m)
            w.withElements(as: Float.self) { old in
                newW.withMutableElements(as: Float.self) { out in
                    for j in 0..<m {
                        let s = gamma[j] / (variance[j] + epsilon).squareRoot()
                        for k in 0..<per { out[j * per + k] = old[j * per + k] * s }
                        newB[j] = (oldBias[j] - mean[j]) * s + beta[j]
                    }
                }
            }
            let wName = names.make(conv.inputs[1] + "_bn_folded")
            let bName = names.make(bn.name.isEmpty ? wName + "_bias" : bn.name + "_folded_bias")
            patch.addInitializer(wName, newW)
            patch.addInitializer(bName, Tensor(shape: [m], values: newB))
            let oldW = conv.inputs[1]
            if usage.readers[oldW] == 1, !usage.outputs.contains(oldW), !fed.contains(oldW) {
                c[oldW] = nil
                // Dropped now, not at `apply`: the graph holds one copy of the weights at a time.
                initializers.removeAll { $0.name == oldW }
            }
            conv.inputs = [conv.inputs[0], wName, bName]
            conv.outputs = [bn.outputs[0]]
            patch.replace(ci, with: conv)
            patch.remove(bi)
        }
        patch.apply(to: self)
    }
}
