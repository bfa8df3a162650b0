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
        var blocks: [AttentionBlock] = []
        for (i, n) in graph.nodes.enumerated() where n.isDefaultDomain && n.opType == "MatMul" {
            if let block = matchAttention(contextNode: i, opset: opset) { blocks.append(block) }
        }
        // A position bias with one row per head (T5's, computed once for every layer) ties the
        // heads of the blocks that add it, and is sliced once.
        var biasSpace: [String: Int] = [:]
        for block in blocks {
            let s = addHeadSpace(block)
            guard let bias = block.bias else { continue }
            if let first = biasSpace[bias.table] {
                tie(first, s)
                continue
            }
            biasSpace[bias.table] = s
            addSlice(bias.table, axis: 1, block: 1, node: bias.gather, space: s)
            let adders = Set(blocks.compactMap { $0.bias?.table == bias.table ? $0.bias?.adder : nil })
            if !readersOf[bias.top, default: []].allSatisfy({ adders.contains($0) }) || graphOutputs.contains(bias.top) {
                spaces[s].problems.append("the per-head bias '\(bias.top)' is read outside the attention scores")
            }
            for (value, axis) in bias.values {
                layouts[value] = ChannelLayout(space: s, origin: s, axis: axis, rank: nil, block: 1)
            }
        }
    }

    /// A bias added to the attention scores with one row per head: Gather(table [buckets,
    /// heads], buckets) -> Transpose(2, 0, 1) -> Unsqueeze(0), then Where / Add / Sub / Mul
    /// with operands that are one per head (masks).
    struct HeadBias {
        var table: String
        var gather: Int
        var heads: Int
        /// The value added to the scores, and the Add adding it.
        var top: String
        var adder: Int
        /// The bias's values and their head axis from the end.
        var values: [(String, Int)]
    }

    /// The per-head bias `value` is, when `adder` adds it to the scores.
    private func perHeadBias(_ value: String, adder: Int) -> HeadBias? {
        var v = value, values: [(String, Int)] = []
        for _ in 0..<8 {
            guard let i = producer[v], graph.nodes[i].isDefaultDomain else { return nil }
            let n = graph.nodes[i]
            var next: String
            switch n.opType {
            case "Where", "Add", "Sub", "Mul":
                let operands = n.opType == "Where" ? [1, 2] : [0, 1]
                let perHead = operands.filter { !isOnePerHead(n.input($0)) }
                guard perHead.count == 1, n.opType != "Where" || isOnePerHead(n.input(0)) else { return nil }
                next = n.input(perHead[0])
            case "Unsqueeze":
                var axes: [Int64]?
                if case .ints(let a)? = n.attribute("axes") { axes = a }
                if let t = constants[n.input(1)], t.dtype == .int64 { axes = t.array(of: Int64.self) }
                guard axes == [0] else { return nil }
                next = n.input(0)
            case "Transpose":
                guard perm(n) == [2, 0, 1], let (gi, g) = produced(n.input(0), by: "Gather"), g.int("axis", default: 0) == 0,
                      let table = constants[g.input(0)], table.rank == 2, table.dtype == .float, singleData(n.input(0)) else { return nil }
                values += [(v, -3), (n.input(0), -1)]
                return HeadBias(table: g.input(0), gather: gi, heads: table.shape[1], top: value, adder: adder, values: values)
            default:
                return nil
            }
            values.append((v, -3))
            guard v == value || singleData(v) else { return nil }
            v = next
        }
        return nil
    }

    /// One matched attention block.
    private struct AttentionBlock {
        /// Q, K, V projections (one when they are fused).
        var projections: [Projection]
        var heads: Int
        var headSize: Int
        /// Constant entries holding `heads` (per Q/K/V shape, deduplicated) and heads * d.
        var headEntries: [(initializer: String, index: Int, node: Int)]
        /// The Q, K, V Reshapes (a shape constant may be shared among them).
        var reshapes: Set<Int>
        var widthEntry: (initializer: String, index: Int, node: Int)?
        /// Wo, the MatMul or Gemm reading it, and the axis of Wo that indexes heads * d.
        var output: (weight: String, matmul: Int, axis: Int)
        /// Constant entries of Reshape targets between the merge and Wo that hold heads * d.
        var outputWidthEntries: [(initializer: String, index: Int, node: Int)]
        /// Intermediate values whose head dimension shrinks: (value, axis from the end, block),
        /// a nil axis where a Reshape merged the heads with another axis.
        var values: [(String, Int?, Int)]
        /// A per-head bias added to the scores.
        var bias: HeadBias?
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

    /// A Q, K or V projection: x @ W (MatMul or Gemm) (+ b) (* or / a one-element constant),
    /// or segment `segment` of `segments` equal ones split off the last axis of one fused
    /// projection (GPT-2's `c_attn`, optionally reshaped before the Split).
    struct Projection {
        var weight: String
        /// The axis of `weight` that indexes the output units.
        var weightAxis: Int
        var bias: String?
        /// The MatMul or Gemm, and the node reading the bias (the Add, or the Gemm).
        var matmul: Int
        var biasReader: Int?
        /// Output units of one segment.
        var units: Int
        var segments = 1
        var segment = 0
        /// Constant entries that hold units * segments (the Reshape before a Split) or units
        /// (the Split's sizes), with the multiple of d each holds per head.
        var entries: [(initializer: String, index: Int, node: Int, perHead: Int)] = []
        /// Values from the product to the projection's output whose last axis holds the units
        /// (one segment), and values holding all segments.
        var values: [String]
        var fusedValues: [String] = []
    }

    /// The projection whose output is `value`.
    private func projection(_ value: String) -> Projection? {
        var v = value, values = [value]
        if let (_, s) = produced(v, by: "Mul") ?? produced(v, by: "Div"), let c = constants[s.input(1)], c.count == 1, single(s.input(0)) {
            v = s.input(0)
            values.append(v)
        }
        if let (si, _) = produced(v, by: "Split") { return fusedProjection(split: si, output: v, values: values) }
        guard var p = product(v) else { return nil }
        p.values = values + p.values.filter { $0 != v }
        return p
    }

    /// MatMul(x, W) or Gemm(x, W[, C]), with or without a bias Add after it, producing `value`.
    private func product(_ value: String) -> Projection? {
        var v = value, add: Int?, bias: String?, values = [value]
        if let (ai, a) = produced(v, by: "Add"), a.inputs.count == 2 {
            guard let b = a.inputs.first(where: { constants[$0] != nil }), let other = a.inputs.first(where: { $0 != b }),
                  single(other) else { return nil }
            add = ai; bias = b; v = other
            values.append(v)
        }
        guard let mi = producer[v], graph.nodes[mi].isDefaultDomain, let w = constants[graph.nodes[mi].input(1)],
              w.rank == 2, w.dtype == .float else { return nil }
        let m = graph.nodes[mi]
        var axis = 1, biasReader = add
        switch m.opType {
        case "MatMul":
            break
        case "Gemm":
            guard m.int("transA", default: 0) == 0, bias == nil else { return nil }
            axis = m.int("transB", default: 0) != 0 ? 0 : 1
            if !m.input(2).isEmpty { bias = m.input(2); biasReader = mi }
        default:
            return nil
        }
        if let bias, constants[bias]?.shape != [w.shape[axis]] { return nil }
        return Projection(weight: m.input(1), weightAxis: axis, bias: bias, matmul: mi, biasReader: biasReader,
                          units: w.shape[axis], values: values)
    }

    /// Output `output` of a Split into equal parts along the last axis of a product (reshaped
    /// or not, with the Reshape's last entry the product's width).
    private func fusedProjection(split si: Int, output: String, values: [String]) -> Projection? {
        let split = graph.nodes[si]
        let x = split.input(0)
        guard let k = split.outputs.firstIndex(of: output), let rank = shapes[x]?.count, singleData(x) else { return nil }
        let n = split.outputs.count
        var axis = split.int("axis", default: 0)
        if axis < 0 { axis += rank }
        guard n >= 2, axis == rank - 1, split.attribute("split") == nil else { return nil }
        var entries: [(initializer: String, index: Int, node: Int, perHead: Int)] = []
        var fusedValues = [x]
        var source = x
        var reshapeEntry: (value: Int, initializer: String, index: Int, node: Int)?
        if let (ri, reshape) = produced(x, by: "Reshape") {
            guard singleData(reshape.input(0)), let e = lastEntry(reshape.input(1)), readersOf[reshape.input(1), default: []] == [ri] else { return nil }
            reshapeEntry = e
            source = reshape.input(0)
            fusedValues.append(source)
        }
        guard var p = product(source), p.units % n == 0 else { return nil }
        if let e = reshapeEntry {
            // [.., units * n] -> heads * d * n after pruning.
            guard e.value == p.units else { return nil }
            entries.append((e.initializer, e.index, e.node, n))
        }
        let sizes = split.input(1)
        if !sizes.isEmpty {
            guard let t = constants[sizes], t.dtype == .int64, t.count == n,
                  t.array(of: Int64.self).allSatisfy({ Int($0) == p.units / n }) else { return nil }
            for j in 0..<n { entries.append((sizes, j, si, 1)) }
        }
        p.units /= n
        p.segments = n
        p.segment = k
        p.entries = entries
        p.fusedValues = fusedValues + p.values.filter { $0 != source }
        p.values = values
        return p
    }

    /// The last entry of a Reshape target: (value, constant, index, reader node) for a constant
    /// int64 vector or a Concat on axis 0 whose last input is a one-element int64 constant.
    private func lastEntry(_ shape: String) -> (value: Int, initializer: String, index: Int, node: Int)? {
        if let t = constants[shape], t.dtype == .int64, t.rank == 1, t.count >= 1, let reader = readersOf[shape]?.first {
            return (Int(t.array(of: Int64.self)[t.count - 1]), shape, t.count - 1, reader)
        }
        guard let (ci, concat) = produced(shape, by: "Concat"), concat.int("axis", default: 0) == 0,
              let last = concat.inputs.last, let v = scalarInt(last) else { return nil }
        return (v, last, 0, ci)
    }

    /// Readers of `value` other than those that read only its dimensions: Shape nodes, and
    /// Transposes read only by such readers (TorchScript transposes the key once more for its
    /// length).
    private func dataReaders(_ value: String) -> [Int] {
        readersOf[value, default: []].filter { !readsOnlyDimensions($0) }
    }

    private func readsOnlyDimensions(_ node: Int, depth: Int = 0) -> Bool {
        let n = graph.nodes[node]
        guard n.isDefaultDomain, depth < 4 else { return false }
        if n.opType == "Shape" { return true }
        guard n.opType == "Transpose", let out = n.outputs.first, !graphOutputs.contains(out) else { return false }
        return readersOf[out, default: []].allSatisfy { readsOnlyDimensions($0, depth: depth + 1) }
    }

    /// `value` feeds exactly one node besides Shape nodes and is not a graph output.
    private func singleData(_ value: String) -> Bool { dataReaders(value).count == 1 && !graphOutputs.contains(value) }

    /// True when the int64 shape `value` is computed at run time from the dimensions of values
    /// (Shape, then Gather / Slice / Unsqueeze / Squeeze / Cast / Concat) with -1 as its only
    /// constant entries, so that a head count removed upstream flows through it.
    private func isRuntimeShape(_ value: String, depth: Int = 0) -> Bool {
        if let t = constants[value] { return t.dtype == .int64 && t.array(of: Int64.self).allSatisfy { $0 == -1 } }
        guard depth < 16, let i = producer[value], graph.nodes[i].isDefaultDomain else { return false }
        let n = graph.nodes[i]
        switch n.opType {
        case "Shape": return true
        case "Gather", "Slice", "Unsqueeze", "Squeeze", "Cast", "Identity": return isRuntimeShape(n.input(0), depth: depth + 1)
        case "Concat": return n.inputs.allSatisfy { isRuntimeShape($0, depth: depth + 1) }
        default: return false
        }
    }

    /// Where `axis` of a rank-4 value is after Reshape `n` to a run-time shape: kept when the
    /// target is a Concat of four entries with -1 exactly there (torch's `view(B, -1, S, d)`),
    /// nil otherwise.
    private func axisAfterReshape(_ n: Node, _ axis: Int?) -> Int? {
        guard let axis, let (_, concat) = produced(n.input(1), by: "Concat"), concat.inputs.count == 4,
              scalarInt(concat.inputs[axis]) == -1,
              concat.inputs.indices.allSatisfy({ $0 == axis || constants[concat.inputs[$0]] == nil }) else { return nil }
        return axis
    }

    /// One of Q, K, V on its way from the projection to the attention MatMul:
    /// Reshape(projection, [B, S, heads or -1, d]), then any Transposes, scalings by a
    /// one-element constant and Reshapes to run-time shapes.
    private struct HeadPath {
        var projection: Projection
        /// The split Reshape's target, and the Reshape.
        var shape: String
        var reshape: Int
        /// The head count and size the split's target states (heads -1 when inferred).
        var heads: Int
        var headSize: Int
        /// Values whose head axis shrinks: (value, head axis from the end, block), or with a
        /// nil axis where a Reshape merged the heads with another axis.
        var values: [(String, Int?, Int)]
        /// Where the heads are in the operand of rank 4, nil when merged.
        var headAxis: Int?
    }

    /// Walks back from an attention MatMul's operand to its projection.
    private func headPath(_ operand: String) -> HeadPath? {
        var value = operand
        var steps: [Node] = []  // from the operand back to the split
        while true {
            guard singleData(value), let i = producer[value], graph.nodes[i].isDefaultDomain else { return nil }
            let n = graph.nodes[i]
            if n.opType == "Reshape", singleData(n.input(0)), let p = projection(n.input(0)),
               let d = shapeEntry(n.input(1), index: 3, count: 4), let h = shapeEntry(n.input(1), index: 2, count: 4),
               d.value > 0, h.value > 0 || h.value == -1 {
                // [B, S, H*d] before the split (MatMul, bias Add, scaling), [B, S, H, d] after.
                var values: [(String, Int?, Int)] = p.values.map { ($0, -1, d.value) } + p.fusedValues.map { ($0, nil, 1) } + [(value, -2, 1)]
                var axis: Int? = 2
                for step in steps.reversed() {
                    switch step.opType {
                    case "Transpose": axis = axis.flatMap { a in perm(step).flatMap { $0.firstIndex(of: Int64(a)) } }
                    case "Reshape": axis = axisAfterReshape(step, axis)
                    default: break
                    }
                    values.append((step.outputs[0], axis.map { $0 - 4 }, 1))
                }
                return HeadPath(projection: p, shape: n.input(1), reshape: i, heads: h.value, headSize: d.value,
                                values: values, headAxis: axis)
            }
            switch n.opType {
            case "Transpose":
                guard perm(n) != nil else { return nil }
            case "Mul", "Div":
                guard let c = constants[n.input(1)], c.count == 1 else { return nil }
            case "Reshape":
                guard isRuntimeShape(n.input(1)) else { return nil }
            default:
                return nil
            }
            steps.append(n)
            value = n.input(0)
        }
    }

    /// True when `value` is known to be 1 along axis -3 (the head axis of [B, H, S, S]) or
    /// to have rank < 3, following Unsqueeze, Cast and elementwise ops back to declarations.
    private func isOnePerHead(_ value: String) -> Bool {
        guard let ones = onesPattern(value, depth: 0) else { return false }
        return ones.count < 3 || ones[ones.count - 3]
    }

    /// For each dimension of `value`: true when it is known to be 1, from the operators that
    /// build it or else from shape inference.
    private func onesPattern(_ value: String, depth: Int) -> [Bool]? {
        if let t = constants[value] { return t.shape.map { $0 == 1 } }
        if let dims = declared[value] { return dims.map { $0 == .value(1) } }
        return builtOnesPattern(value, depth: depth) ?? shapes[value].map { $0.map { $0 == .value(1) } }
    }

    private func builtOnesPattern(_ value: String, depth: Int) -> [Bool]? {
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
        var chain: [String] = []  // [B, H, S, S] values from q.k to the probabilities
        // Probabilities: Softmax over the last axis, optionally Where(IsNaN(p), 0, p) after it
        // (torch's scaled_dot_product_attention export).
        var p = ctx.input(0)
        guard singleData(p) else { return nil }
        if let (_, w) = produced(p, by: "Where"), let (_, isNaN) = produced(w.input(0), by: "IsNaN"),
           isNaN.input(0) == w.input(2), let zero = constants[w.input(1)], zero.count == 1,
           Set(dataReaders(w.input(2))) == Set([producer[w.input(0)]!, producer[p]!]), !graphOutputs.contains(w.input(2)) {
            chain += [p, w.input(0)]
            p = w.input(2)
        } else if !single(p) {
            return nil
        }
        guard let (_, softmax) = produced(p, by: "Softmax") else { return nil }
        let axis = softmax.int("axis", default: opset >= 13 ? -1 : 1)
        guard axis == -1 || axis == 3 else { return nil }
        chain.append(p)
        p = softmax.input(0)
        var scores: Node?, bias: HeadBias?
        while scores == nil {
            chain.append(p)
            guard singleData(p), let i = producer[p] else { return nil }
            let n = graph.nodes[i]
            guard n.isDefaultDomain, n.inputs.count == 2 else { return nil }
            switch n.opType {
            case "MatMul":
                scores = n
            case "Div", "Mul":
                guard let c = constants[n.input(1)], c.count == 1 else { return nil }
                p = n.input(0)
            case "Add", "Sub":
                // One operand carries q.k, the other (a mask) must not differ per head, or is
                // a per-head bias (one at most).
                let (a, b) = (n.input(0), n.input(1))
                if isOnePerHead(b) {
                    p = a
                } else if n.opType == "Add", isOnePerHead(a) {
                    p = b
                } else if n.opType == "Add", bias == nil, let found = perHeadBias(b, adder: i) ?? perHeadBias(a, adder: i) {
                    bias = found
                    p = found.top == b ? a : b
                } else {
                    return nil
                }
            default:
                return nil
            }
        }
        // The scores' batch axes broadcast: once q or k has the heads on axis 1 of 4, so do
        // the scores, the probabilities, v and the context.
        guard let scores, let q = headPath(scores.input(0)), let k = headPath(scores.input(1)), let v = headPath(ctx.input(1)),
              q.headAxis == 1 || k.headAxis == 1, q.headAxis ?? 1 == 1, k.headAxis ?? 1 == 1, v.headAxis ?? 1 == 1 else { return nil }

        // The three splits agree on heads and d; a head count they state is rewritten, so its
        // constant must be read by these Reshapes only.
        let splits = [q, k, v]
        var reshapes = Set(splits.map(\.reshape))
        guard let headSize = splits.first?.headSize, splits.allSatisfy({ $0.headSize == headSize }) else { return nil }
        let width = q.projection.units
        guard width % headSize == 0, splits.allSatisfy({ $0.projection.units == width }) else { return nil }
        // A fused projection feeds exactly these three, one segment each.
        var projections: [Projection] = []
        for p in splits.map(\.projection) where !projections.contains(where: { $0.weight == p.weight }) {
            let uses = splits.filter { $0.projection.weight == p.weight }.map(\.projection.segment)
            guard uses.count == p.segments, Set(uses).count == p.segments else { return nil }
            projections.append(p)
        }
        let heads = width / headSize
        if let bias, bias.heads != heads { return nil }
        var headEntries: [(initializer: String, index: Int, node: Int)] = []
        for shape in Set(splits.map(\.shape)) {
            guard let h = shapeEntry(shape, index: 2, count: 4), h.value == heads || h.value == -1 else { return nil }
            if h.value == -1 { continue }
            guard readersOf[shape, default: []].allSatisfy({ reshapes.contains($0) }) else { return nil }
            headEntries.append((h.initializer, h.index, h.node))
        }

        // Output: Transposes and Reshapes to run-time shapes, then the Reshape that merges
        // [B, S, heads, d] into [B, S, heads*d], then MatMul(., Wo).
        guard let out = ctx.outputs.first else { return nil }
        var values: [(String, Int?, Int)] = [(out, -3, 1)]
        var value = out, headAxis: Int? = 1
        var merge: (reshape: Int, entry: (value: Int, initializer: String, index: Int, node: Int))?
        while merge == nil {
            guard singleData(value), let ri = dataReaders(value).first, graph.nodes[ri].isDefaultDomain,
                  graph.nodes[ri].input(0) == value, let next = graph.nodes[ri].outputs.first else { return nil }
            let n = graph.nodes[ri]
            if n.opType == "Reshape", headAxis == 2, let e = shapeEntry(n.input(1), index: 2, count: 3) ?? lastEntry(n.input(1)),
               e.value == width || (e.value == -1 && shapeEntry(n.input(1), index: 2, count: 3) != nil) {
                merge = (ri, e)
            } else if n.opType == "Transpose", let pm = perm(n) {
                headAxis = headAxis.flatMap { a in pm.firstIndex(of: Int64(a)) }
            } else if n.opType == "Reshape", isRuntimeShape(n.input(1)) {
                headAxis = axisAfterReshape(n, headAxis)
            } else if n.opType == "Reshape", let axis = headAxis, let e = shapeEntry(n.input(1), index: axis, count: 4), e.value == heads,
                      readersOf[n.input(1), default: []] == [ri] {
                // A constant target stating the heads where they are ([B, H, S, d] spelled out).
                headEntries.append((e.initializer, e.index, e.node))
                reshapes.insert(ri)
            } else {
                return nil
            }
            if merge == nil { values.append((next, headAxis.map { $0 - 4 }, 1)) }
            value = next
        }
        guard let merge, let mergedOut = graph.nodes[merge.reshape].outputs.first else { return nil }
        if merge.entry.value == width, readersOf[graph.nodes[merge.reshape].input(1), default: []] != [merge.reshape] { return nil }
        // [.., heads*d] on to Wo, through Reshapes that keep that last axis (GPT-2's Conv1D
        // flattens to [B*S, heads*d]): its entry in their targets is rewritten or read at run time.
        var widthValues = [mergedOut], outputWidthEntries: [(initializer: String, index: Int, node: Int)] = []
        var output: (weight: String, matmul: Int, axis: Int)?
        while output == nil {
            let last = widthValues[widthValues.count - 1]
            guard singleData(last), let ri = dataReaders(last).first, graph.nodes[ri].isDefaultDomain, graph.nodes[ri].input(0) == last,
                  let next = graph.nodes[ri].outputs.first else { return nil }
            let n = graph.nodes[ri]
            switch n.opType {
            case "MatMul":
                guard let wo = constants[n.input(1)], wo.rank == 2, wo.shape[0] == width, wo.dtype == .float else { return nil }
                output = (n.input(1), ri, 0)
            case "Gemm":
                let axis = n.int("transB", default: 0) != 0 ? 1 : 0
                guard n.int("transA", default: 0) == 0, let wo = constants[n.input(1)], wo.rank == 2, wo.shape[axis] == width,
                      wo.dtype == .float else { return nil }
                output = (n.input(1), ri, axis)
            case "Reshape":
                if let e = lastEntry(n.input(1)), e.value == width {
                    outputWidthEntries.append((e.initializer, e.index, e.node))
                } else if let (_, concat) = produced(n.input(1), by: "Concat"), concat.int("axis", default: 0) == 0,
                          let part = concat.inputs.last, isLastDimension(part, of: { widthValues.contains($0) }),
                          concat.inputs.dropLast().allSatisfy({ scalarInt($0) == -1 || constants[$0] == nil }) {
                    // x.view(-1, x.size(-1)): follows the pruning by itself.
                } else {
                    return nil
                }
                widthValues.append(next)
            default:
                return nil
            }
        }
        guard let output else { return nil }
        values += widthValues.map { ($0, -1, headSize) }

        return AttentionBlock(projections: projections, heads: heads, headSize: headSize,
                              headEntries: headEntries, reshapes: reshapes,
                              widthEntry: merge.entry.value == width ? (merge.entry.initializer, merge.entry.index, merge.entry.node) : nil,
                              output: output, outputWidthEntries: outputWidthEntries,
                              values: q.values + k.values + v.values + chain.map { ($0, -3, 1) } + values,
                              bias: bias)
    }

    /// Adds the space of `b`'s heads and returns it.
    private mutating func addHeadSpace(_ b: AttentionBlock) -> Int {
        var scored = b.projections.map { ScoredWeight(name: $0.weight, axis: $0.weightAxis, block: b.headSize) }
        scored.append(ScoredWeight(name: b.output.weight, axis: b.output.axis, block: b.headSize))
        let s = addSpace(ChannelSpace(producer: b.output.matmul, weight: "heads of \(b.output.weight)", channels: b.heads, scored: scored))
        if b.heads < 2 { spaces[s].problems.append("the attention has \(b.heads) head") }
        for w in scored where constants[w.name]!.count < options.minElements {
            spaces[s].problems.append("weight '\(w.name)' has fewer elements than the minimum \(options.minElements)")
        }
        for p in b.projections {
            addSlice(p.weight, axis: p.weightAxis, block: b.headSize, node: p.matmul, space: s, segments: p.segments)
            if let bias = p.bias, let reader = p.biasReader {
                addSlice(bias, axis: 0, block: b.headSize, node: reader, space: s, segments: p.segments)
            }
            for e in p.entries where checkEditable(e.initializer, node: e.node, space: s) {
                spaces[s].edits.append(.shapeEntry(initializer: e.initializer, index: e.index, unitsPerChannel: e.perHead * b.headSize, node: e.node))
            }
            // The projection's units are pruned per head here, not one by one.
            for q in spaces.indices where q != s && spaces[q].producer == p.matmul { spaces[q].heads = s }
        }
        addSlice(b.output.weight, axis: b.output.axis, block: b.headSize, node: b.output.matmul, space: s)
        for e in b.outputWidthEntries where checkEditable(e.initializer, node: e.node, space: s) {
            spaces[s].edits.append(.shapeEntry(initializer: e.initializer, index: e.index, unitsPerChannel: b.headSize, node: e.node))
        }
        for e in b.headEntries where checkEditable(e.initializer, node: e.node, space: s, sharedBy: b.reshapes) {
            spaces[s].edits.append(.shapeEntry(initializer: e.initializer, index: e.index, unitsPerChannel: 1, node: e.node))
        }
        if let e = b.widthEntry, checkEditable(e.initializer, node: e.node, space: s) {
            spaces[s].edits.append(.shapeEntry(initializer: e.initializer, index: e.index, unitsPerChannel: b.headSize, node: e.node))
        }
        // Declared shapes of these values follow the heads (the channel walk is over, so the
        // Q/K/V layouts can be replaced).
        for (value, axis, block) in b.values {
            layouts[value] = ChannelLayout(space: s, origin: s, axis: axis ?? -1, rank: nil, block: block, merged: axis == nil)
        }
        return s
    }
}
