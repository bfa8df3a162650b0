import KerfCore

// Attention heads in the op pattern torch.onnx.export writes for BERT-style self-attention:
//
//   q = Reshape(MatMul(x, Wq) [+ bq], [B, S, heads, d]) -> Transpose(0,2,1,3)   (k: (0,2,3,1); v as q)
//   scores = MatMul(q, k) [/ or * scalar] [+ mask] -> Softmax(last axis)
//   out = MatMul(Reshape(Transpose(MatMul(scores, v), (0,2,1,3)), [B, S, heads*d]), Wo)
//
// with the [B, S, heads, d] target a constant or a Concat of (batch, sequence, [heads], [d]).
// Removing head h slices columns [h*d, (h+1)*d) of Wq, Wk, Wv and their biases, rows of Wo,
// and rewrites the heads and heads*d constants. Each matched block becomes one space of
// `heads` channels with block size d.

extension ChannelAnalysis {
    mutating func findAttentionHeads(opset: Int) {
        for (i, n) in graph.nodes.enumerated() where n.isDefaultDomain && n.opType == "MatMul" {
            if let block = matchAttention(contextNode: i, opset: opset) { addHeadSpace(block) }
        }
    }

    /// One matched attention block.
    private struct AttentionBlock {
        /// Q, K, V projections: weight, optional bias, and the MatMul / Add nodes.
        var projections: [(weight: String, bias: String?, matmul: Int, add: Int?)]
        var heads: Int
        var headSize: Int
        /// Constant entries holding `heads` (per Q/K/V shape, deduplicated) and heads * d.
        var headEntries: [(initializer: String, index: Int, node: Int)]
        /// The Q, K, V Reshapes (a shape constant may be shared among them).
        var reshapes: Set<Int>
        var widthEntry: (initializer: String, index: Int, node: Int)?
        var output: (weight: String, matmul: Int)
        /// Intermediate values whose head dimension shrinks: (value, axis from the end, block).
        var values: [(String, Int, Int)]
    }

    private func single(_ value: String) -> Bool { readers[value, default: 0] == 1 && !graphOutputs.contains(value) }

    private func produced(_ value: String, by op: String) -> (Int, Node)? {
        guard let i = producer[value], graph.nodes[i].isDefaultDomain, graph.nodes[i].opType == op else { return nil }
        return (i, graph.nodes[i])
    }

    private func perm(_ n: Node) -> [Int64]? {
        if case .ints(let p)? = n.attribute("perm") { return p }
        return nil
    }

    /// A constant with exactly one element, as Int.
    private func scalarInt(_ value: String) -> Int? {
        guard let t = constants[value], t.count == 1, t.dtype == .int64 else { return nil }
        return Int(t.array(of: Int64.self)[0])
    }

    /// Where entry `index` of the shape value `shape` comes from: an int64 constant, or the
    /// one-element constant input `index` of a Concat on axis 0. Returns the entry's value
    /// and its location.
    private func shapeEntry(_ shape: String, index: Int, count: Int) -> (value: Int, initializer: String, index: Int, node: Int)? {
        if let t = constants[shape], t.dtype == .int64, t.shape == [count] {
            guard let reader = readersOf[shape]?.first else { return nil }
            return (Int(t.array(of: Int64.self)[index]), shape, index, reader)
        }
        guard let (ci, concat) = produced(shape, by: "Concat"), concat.int("axis", default: 0) == 0,
              concat.inputs.count == count, let v = scalarInt(concat.inputs[index]) else { return nil }
        return (v, concat.inputs[index], 0, ci)
    }

    /// x @ W (+ b) with constant W [in, out] and b [out]: (W, b, MatMul node, Add node).
    private func projection(_ value: String) -> (weight: String, bias: String?, matmul: Int, add: Int?)? {
        var v = value, add: Int?, bias: String?
        if let (ai, a) = produced(value, by: "Add"), a.inputs.count == 2 {
            guard let b = a.inputs.first(where: { constants[$0] != nil }), let other = a.inputs.first(where: { $0 != b }),
                  single(other) else { return nil }
            add = ai; bias = b; v = other
        }
        guard let (mi, m) = produced(v, by: "MatMul"), let w = constants[m.input(1)], w.rank == 2, w.dtype == .float else { return nil }
        if let bias, constants[bias]!.shape != [w.shape[1]] { return nil }
        return (m.input(1), bias, mi, add)
    }

    /// Reshape(projection, [B, S, heads, d]) -> Transpose(perm): the projection and its shape.
    private func splitHeads(_ value: String, perm expected: [Int64], headSize: (String) -> Int?) -> (projection: (weight: String, bias: String?, matmul: Int, add: Int?), shape: String, reshape: Int, values: [(String, Int, Int)])? {
        guard single(value), let (_, t) = produced(value, by: "Transpose"), perm(t) == expected,
              single(t.input(0)), let (ri, r) = produced(t.input(0), by: "Reshape"),
              single(r.input(0)), let p = projection(r.input(0)), let d = headSize(r.input(1)) else { return nil }
        // [B, S, H*d] before the Reshape (MatMul and bias Add), [B, S, H, d] after, then [B, H, ., .].
        var values = [(graph.nodes[p.matmul].outputs[0], -1, d), (r.outputs[0], -2, 1), (value, -3, 1)]
        if let a = p.add { values.append((graph.nodes[a].outputs[0], -1, d)) }
        return (p, r.input(1), ri, values)
    }

    /// True when `value` is known to be 1 along axis -3 (the head axis of [B, H, S, S]) or
    /// to have rank < 3, following Unsqueeze, Cast and elementwise ops back to declarations.
    private func isOnePerHead(_ value: String) -> Bool {
        guard let ones = onesPattern(value, depth: 0) else { return false }
        return ones.count < 3 || ones[ones.count - 3]
    }

    /// For each dimension of `value`: true when it is known to be 1.
    private func onesPattern(_ value: String, depth: Int) -> [Bool]? {
        if let t = constants[value] { return t.shape.map { $0 == 1 } }
        if let dims = declared[value] { return dims.map { $0 == .value(1) } }
        guard depth < 12, let i = producer[value] else { return nil }
        let n = graph.nodes[i]
        guard n.isDefaultDomain else { return nil }
        switch n.opType {
        case "Cast", "Neg", "Not", "Identity":
            return onesPattern(n.input(0), depth: depth + 1)
        case "Unsqueeze":
            guard let input = onesPattern(n.input(0), depth: depth + 1) else { return nil }
            var axes: [Int]?
            if case .ints(let a)? = n.attribute("axes") { axes = a.map { Int($0) } }
            if let t = constants[n.input(1)], t.dtype == .int64 { axes = t.array(of: Int64.self).map { Int($0) } }
            guard let axes else { return nil }
            let rank = input.count + axes.count
            let inserted = Set(axes.map { $0 < 0 ? $0 + rank : $0 })
            var it = input.makeIterator()
            return (0..<rank).map { inserted.contains($0) ? true : (it.next() ?? false) }
        case "Add", "Sub", "Mul", "Div", "Where", "Max", "Min":
            var patterns: [[Bool]] = []
            for input in n.inputs where !input.isEmpty {
                guard let p = onesPattern(input, depth: depth + 1) else { return nil }
                patterns.append(p)
            }
            let rank = patterns.map(\.count).max() ?? 0
            return (0..<rank).map { d in patterns.allSatisfy { p in d < rank - p.count || p[d - (rank - p.count)] } }
        default:
            return nil
        }
    }

    /// Matches the block whose `MatMul(softmax scores, v)` is node `contextNode`.
    private func matchAttention(contextNode: Int, opset: Int) -> AttentionBlock? {
        let ctx = graph.nodes[contextNode]
        // Scores: Softmax over the last axis of MatMul(q, k), scaled and masked on the way.
        var p = ctx.input(0)
        guard single(p), let (_, softmax) = produced(p, by: "Softmax") else { return nil }
        let axis = softmax.int("axis", default: opset >= 13 ? -1 : 1)
        guard axis == -1 || axis == 3 else { return nil }
        var chain = [p]  // [B, H, S, S] values from q.k to the softmax
        p = softmax.input(0)
        var scores: Node?
        while scores == nil {
            chain.append(p)
            guard single(p), let i = producer[p] else { return nil }
            let n = graph.nodes[i]
            guard n.isDefaultDomain, n.inputs.count == 2 else { return nil }
            switch n.opType {
            case "MatMul":
                scores = n
            case "Div", "Mul":
                guard let c = constants[n.input(1)], c.count == 1 else { return nil }
                p = n.input(0)
            case "Add", "Sub":
                // One operand carries q.k, the other (a mask) must not differ per head.
                let (a, b) = (n.input(0), n.input(1))
                if isOnePerHead(b) { p = a } else if n.opType == "Add", isOnePerHead(a) { p = b } else { return nil }
            default:
                return nil
            }
        }
        let sizeOf = { (shape: String) in self.shapeEntry(shape, index: 3, count: 4)?.value }
        guard let scores,
              let q = splitHeads(scores.input(0), perm: [0, 2, 1, 3], headSize: sizeOf),
              let k = splitHeads(scores.input(1), perm: [0, 2, 3, 1], headSize: sizeOf),
              let v = splitHeads(ctx.input(1), perm: [0, 2, 1, 3], headSize: sizeOf) else { return nil }

        // Every split shape says [B, S, heads, d] with the same heads and d, and is read only
        // by these three Reshapes.
        let reshapes = Set([q.reshape, k.reshape, v.reshape])
        var heads = 0, headSize = 0
        var headEntries: [(initializer: String, index: Int, node: Int)] = []
        for shape in Set([q.shape, k.shape, v.shape]) {
            guard readersOf[shape, default: []].allSatisfy({ reshapes.contains($0) }),
                  let h = shapeEntry(shape, index: 2, count: 4), let d = shapeEntry(shape, index: 3, count: 4),
                  h.value > 0, d.value > 0, heads == 0 || (heads == h.value && headSize == d.value) else { return nil }
            heads = h.value
            headSize = d.value
            headEntries.append((h.initializer, h.index, h.node))
        }
        let width = heads * headSize
        for proj in [q.projection, k.projection, v.projection] where constants[proj.weight]!.shape[1] != width { return nil }

        // Output: Transpose(0,2,1,3) -> Reshape [B, S, heads*d] -> MatMul(., Wo).
        guard let out = ctx.outputs.first, single(out), let ti = readersOf[out]?.first, graph.nodes[ti].opType == "Transpose",
              perm(graph.nodes[ti]) == [0, 2, 1, 3], let merged = graph.nodes[ti].outputs.first, single(merged),
              let ri = readersOf[merged]?.first, graph.nodes[ri].opType == "Reshape", graph.nodes[ri].input(0) == merged,
              let widthEntry = shapeEntry(graph.nodes[ri].input(1), index: 2, count: 3), widthEntry.value == width || widthEntry.value == -1,
              let mergedOut = graph.nodes[ri].outputs.first, single(mergedOut),
              let oi = readersOf[mergedOut]?.first, graph.nodes[oi].opType == "MatMul", graph.nodes[oi].input(0) == mergedOut,
              let wo = constants[graph.nodes[oi].input(1)], wo.rank == 2, wo.shape[0] == width, wo.dtype == .float else { return nil }
        if widthEntry.value == width, readersOf[graph.nodes[ri].input(1), default: []] != [ri] { return nil }

        return AttentionBlock(projections: [q.projection, k.projection, v.projection], heads: heads, headSize: headSize,
                              headEntries: headEntries, reshapes: reshapes,
                              widthEntry: widthEntry.value == width ? (widthEntry.initializer, widthEntry.index, widthEntry.node) : nil,
                              output: (graph.nodes[oi].input(1), oi),
                              values: q.values + k.values + v.values + chain.map { ($0, -3, 1) }
                                  + [(out, -3, 1), (merged, -2, 1), (mergedOut, -1, headSize)])
    }

    private mutating func addHeadSpace(_ b: AttentionBlock) {
        var scored = b.projections.map { ScoredWeight(name: $0.weight, axis: 1, block: b.headSize) }
        scored.append(ScoredWeight(name: b.output.weight, axis: 0, block: b.headSize))
        let s = addSpace(ChannelSpace(producer: b.output.matmul, weight: "heads of \(b.output.weight)", channels: b.heads, scored: scored))
        if b.heads < 2 { spaces[s].problems.append("the attention has \(b.heads) head") }
        for w in scored where constants[w.name]!.count < options.minElements {
            spaces[s].problems.append("weight '\(w.name)' has fewer elements than the minimum \(options.minElements)")
        }
        for p in b.projections {
            addSlice(p.weight, axis: 1, block: b.headSize, node: p.matmul, space: s)
            if let bias = p.bias, let add = p.add { addSlice(bias, axis: 0, block: b.headSize, node: add, space: s) }
            // The projection's units are pruned per head here, not one by one.
            for q in spaces.indices where q != s && spaces[q].producer == p.matmul { spaces[q].heads = s }
        }
        addSlice(b.output.weight, axis: 0, block: b.headSize, node: b.output.matmul, space: s)
        for e in b.headEntries where checkEditable(e.initializer, node: e.node, space: s, sharedBy: b.reshapes) {
            spaces[s].edits.append(.shapeEntry(initializer: e.initializer, index: e.index, unitsPerChannel: 1, node: e.node))
        }
        if let e = b.widthEntry, checkEditable(e.initializer, node: e.node, space: s) {
            spaces[s].edits.append(.shapeEntry(initializer: e.initializer, index: e.index, unitsPerChannel: b.headSize, node: e.node))
        }
        // Declared shapes of these values follow the heads (the channel walk is over, so the
        // Q/K/V layouts can be replaced).
        for (value, axis, block) in b.values {
            layouts[value] = ChannelLayout(space: s, origin: s, axis: axis, rank: nil, block: block)
        }
    }
}
