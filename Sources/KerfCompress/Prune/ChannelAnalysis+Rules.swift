import KerfCore

// What each operator does to the channels that reach it: start a space (Conv, Gemm, MatMul),
// absorb the channels (the next Conv / Gemm / MatMul reduces over them), pass them through
// (activations, BatchNorm, pools, elementwise ops with per-channel constants, depthwise Conv,
// Flatten / Reshape to [N, C*H*W]), tie them (residual Add / Mul of two tracked values), or
// reject them (anything Kerf cannot rewrite exactly).

/// Ops that map each element to one element of the same shape.
private let unaryOps: Set<String> = [
    "Relu", "LeakyRelu", "Clip", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh", "Elu", "Selu", "Celu",
    "Gelu", "Erf", "Softplus", "Softsign", "Mish", "ThresholdedRelu", "Shrink", "Abs", "Neg", "Exp",
    "Log", "Sqrt", "Reciprocal", "Floor", "Ceil", "Round", "Sign", "Sin", "Cos", "Identity", "Dropout",
    "Cast", "Not", "IsNaN", "IsInf",
]

/// Ops that combine their inputs element by element with broadcasting.
private let elementwiseOps: Set<String> = ["Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Sum", "Mean", "PRelu"]

extension ChannelAnalysis {
    mutating func visit(_ i: Int) {
        let n = graph.nodes[i]
        let tracked = n.inputs.compactMap { layouts[$0] }
        guard n.isDefaultDomain else {
            for l in tracked { reject(l, "read by \(n.label) of domain '\(n.domain)'") }
            return
        }
        switch n.opType {
        case "Conv": visitConv(i)
        case "Gemm": visitGemm(i)
        case "MatMul": visitMatMul(i)
        case _ where tracked.isEmpty: return
        case "BatchNormalization", "InstanceNormalization": visitNormalization(i)
        case "LayerNormalization": visitLayerNormalization(i)
        case "Transpose": visitTranspose(i)
        case "MaxPool", "AveragePool", "LpPool": visitPool(i, global: false)
        case "GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool": visitPool(i, global: true)
        case "Flatten": visitFlatten(i)
        case "Shape":
            // Its dimensions follow the pruning; fine where they only build Reshape targets.
            if !onlyBuildsReshapeTargets(n.outputs.first ?? "") {
                for l in tracked { reject(l, "read by \(n.label), whose result is used beyond Reshape targets") }
            }
        case "Reshape": visitReshape(i)
        case "Squeeze", "Unsqueeze": visitSqueeze(i)
        case "ReduceMean", "ReduceMax", "ReduceMin", "ReduceSum", "ReduceL1", "ReduceL2": visitReduce(i)
        case _ where unaryOps.contains(n.opType): visitUnary(i)
        case _ where elementwiseOps.contains(n.opType): visitElementwise(i)
        case "Concat":
            for l in tracked { reject(l, "concatenated by \(n.label); channels joined by Concat are left alone") }
        default:
            for l in tracked { reject(l, "read by \(n.label), which channel pruning cannot rewrite") }
        }
    }

    /// Every use of `value` (a Shape's output), through Gather / Slice / Squeeze / Unsqueeze /
    /// Cast / Concat, is the target of a Reshape.
    private func onlyBuildsReshapeTargets(_ value: String, depth: Int = 0) -> Bool {
        guard depth < 8, !value.isEmpty, !graphOutputs.contains(value) else { return false }
        return readersOf[value, default: []].allSatisfy { r in
            let n = graph.nodes[r]
            guard n.isDefaultDomain else { return false }
            switch n.opType {
            case "Reshape": return n.input(1) == value && n.input(0) != value
            case "Gather", "Slice", "Squeeze", "Unsqueeze", "Cast": return n.input(0) == value && onlyBuildsReshapeTargets(n.outputs.first ?? "", depth: depth + 1)
            case "Concat": return onlyBuildsReshapeTargets(n.outputs.first ?? "", depth: depth + 1)
            default: return false
            }
        }
    }

    /// Rejects tracked values read at any input of `n` other than `allowed`.
    private mutating func rejectTracked(_ n: Node, except allowed: Set<Int>, _ role: String) {
        for (k, name) in n.inputs.enumerated() where !allowed.contains(k) {
            if let l = layouts[name] { reject(l, "\(n.label) reads them as its \(role)") }
        }
    }

    /// Rejects `l` unless every output of `n` after the first is unused.
    private mutating func requireOnlyFirstOutput(_ n: Node, _ l: ChannelLayout) -> Bool {
        for o in n.outputs.dropFirst() where !o.isEmpty && (readers[o, default: 0] > 0 || graphOutputs.contains(o)) {
            reject(l, "\(n.label) output '\(o)' is used")
            return false
        }
        return true
    }

    // MARK: - Producers and absorbing consumers

    /// Conv: group 1 absorbs its input channels (W axis 1) and starts a space of its filters;
    /// a depthwise Conv (group == C, one filter per channel) passes its input channels through.
    mutating func visitConv(_ i: Int) {
        let n = graph.nodes[i]
        let x = n.input(0), w = n.input(1), b = n.input(2)
        rejectTracked(n, except: [0], "weight or bias")
        let group = n.int("group", default: 1)
        let weight = constants[w].flatMap { $0.rank >= 3 ? $0 : nil }
        if let l = layouts[x] {
            let c = spaces[l.space].channels
            if let weight, l.block == 1, rank(of: x, l) == weight.rank, l.axis == 1 - weight.rank {
                if group == 1 {
                    addSlice(w, axis: 1, block: 1, node: i, space: l.space)
                } else if group == c, weight.shape[0] == c, weight.shape[1] == 1 {
                    addSlice(w, axis: 0, block: 1, node: i, space: l.space)
                    if !b.isEmpty { addSlice(b, axis: 0, block: 1, node: i, space: l.space) }
                    spaces[l.space].edits.append(.depthwiseGroup(node: i))
                    if let out = n.outputs.first, !out.isEmpty { layouts[out] = l }
                    return
                } else {
                    reject(l, "grouped \(n.label) (group \(group)) mixes them")
                }
            } else if weight == nil {
                reject(l, "\(n.label) reads them with a weight that is not a constant")
            } else {
                reject(l, "\(n.label) reads them on an axis other than 1")
            }
        }
        guard group == 1, let weight, let out = n.outputs.first, !out.isEmpty else { return }
        let s = startSpace(node: i, weight: w, axis: 0, channels: weight.shape[0])
        if !b.isEmpty { addSlice(b, axis: 0, block: 1, node: i, space: s) }
        layouts[out] = ChannelLayout(space: s, origin: s, axis: 1 - weight.rank, rank: weight.rank)
    }

    /// Gemm: A's channels index the rows of op(B) (absorbed); op(B)'s columns start a space,
    /// with the bias C sliced along its last axis.
    mutating func visitGemm(_ i: Int) {
        let n = graph.nodes[i]
        let a = n.input(0), bName = n.input(1), c = n.input(2)
        rejectTracked(n, except: [0], "weight or bias")
        let transA = n.int("transA", default: 0) != 0, transB = n.int("transB", default: 0) != 0
        let weight = constants[bName].flatMap { $0.rank == 2 ? $0 : nil }
        if let l = layouts[a] {
            if weight == nil {
                reject(l, "\(n.label) reads them with a weight that is not a constant")
            } else if transA || l.axis != -1 {
                reject(l, "\(n.label) reads them transposed")
            } else {
                addSlice(bName, axis: transB ? 1 : 0, block: l.block, node: i, space: l.space)
            }
        }
        guard let weight, let out = n.outputs.first, !out.isEmpty else { return }
        let units = transB ? weight.shape[0] : weight.shape[1]
        let s = startSpace(node: i, weight: bName, axis: transB ? 0 : 1, channels: units)
        if !c.isEmpty {
            if let bias = constants[c] {
                if bias.rank >= 1, bias.shape[bias.rank - 1] == units {
                    addSlice(c, axis: bias.rank - 1, block: 1, node: i, space: s)
                } else if bias.rank >= 1 && bias.shape[bias.rank - 1] != 1 {
                    spaces[s].problems.append("bias '\(c)' of \(n.label) has shape \(bias.shape)")
                }
            } else {
                spaces[s].problems.append("bias '\(c)' of \(n.label) is not a constant")
            }
        }
        layouts[out] = ChannelLayout(space: s, origin: s, axis: -1, rank: 2)
    }

    /// MatMul with a constant right operand B: A's last axis indexes B's rows (absorbed); a
    /// 2-D B's columns start a space.
    mutating func visitMatMul(_ i: Int) {
        let n = graph.nodes[i]
        let a = n.input(0), bName = n.input(1)
        rejectTracked(n, except: [0], "right operand")
        let weight = constants[bName]
        if let l = layouts[a] {
            if let weight, weight.rank >= 2, l.axis == -1 {
                addSlice(bName, axis: weight.rank - 2, block: l.block, node: i, space: l.space)
            } else if weight == nil {
                reject(l, "\(n.label) multiplies them by a value that is not a constant")
            } else {
                reject(l, "\(n.label) reads them on an axis other than the last")
            }
        }
        guard let weight, weight.rank == 2, let out = n.outputs.first, !out.isEmpty else { return }
        let s = startSpace(node: i, weight: bName, axis: 1, channels: weight.shape[1])
        let inputRank = layouts[a].flatMap { rank(of: a, $0) } ?? knownRank(a)
        layouts[out] = ChannelLayout(space: s, origin: s, axis: -1, rank: inputRank)
    }

    // MARK: - Pass-through ops

    /// BatchNormalization / InstanceNormalization on axis 1: every parameter is sliced.
    mutating func visitNormalization(_ i: Int) {
        let n = graph.nodes[i]
        rejectTracked(n, except: [0], "parameter")
        guard let l = layouts[n.input(0)], let out = n.outputs.first, !out.isEmpty else { return }
        guard l.position(n.input(0), self) == 1, l.block == 1 else {
            reject(l, "\(n.label) normalizes an axis other than theirs")
            return
        }
        guard requireOnlyFirstOutput(n, l) else { return }
        for k in 1..<n.inputs.count where !n.inputs[k].isEmpty {
            addSlice(n.inputs[k], axis: 0, block: 1, node: i, space: l.space)
        }
        if n.opType == "BatchNormalization", let o = l.origin, spaces[o].gamma == nil { spaces[o].gamma = n.input(1) }
        layouts[out] = l
    }

    /// LayerNormalization over the channel axis alone (their last axis, as ConvNeXt normalizes
    /// channels-last): scale and bias are sliced, and the statistics are then taken over the
    /// kept channels.
    mutating func visitLayerNormalization(_ i: Int) {
        let n = graph.nodes[i]
        rejectTracked(n, except: [0], "scale or bias")
        guard let l = layouts[n.input(0)], let out = n.outputs.first, !out.isEmpty else { return }
        guard let r = rank(of: n.input(0), l), l.block == 1, !l.merged else { return reject(l, "\(n.label) normalizes them in a layout not known") }
        let axis = n.int("axis", default: -1)
        guard axis == -1 || axis == r - 1, l.axis == -1 else { return reject(l, "\(n.label) normalizes over more axes than theirs") }
        guard requireOnlyFirstOutput(n, l) else { return }
        for k in 1..<n.inputs.count where !n.inputs[k].isEmpty {
            guard let t = constants[n.inputs[k]], t.rank >= 1 else { return reject(l, "\(n.label) has a scale or bias that is not a constant") }
            addSlice(n.inputs[k], axis: t.rank - 1, block: 1, node: i, space: l.space)
        }
        layouts[out] = l
    }

    /// Transpose: the channel axis goes where `perm` puts it.
    mutating func visitTranspose(_ i: Int) {
        let n = graph.nodes[i]
        guard let l = layouts[n.input(0)], let out = n.outputs.first, !out.isEmpty else { return }
        guard let r = rank(of: n.input(0), l), l.block == 1, !l.merged else { return reject(l, "\(n.label) moves them in a layout not known") }
        var perm = Array((0..<r).reversed())
        if case .ints(let p)? = n.attribute("perm") { perm = p.map { Int($0) } }
        let p = r + l.axis
        guard perm.count == r, Set(perm) == Set(0..<r), let j = perm.firstIndex(of: p) else { return reject(l, "\(n.label) has an invalid perm") }
        var o = l
        o.rank = r
        o.axis = j - r
        o.trailingOnes = l.trailingOnes && perm[(j + 1)...].allSatisfy { $0 > p }
        layouts[out] = o
    }

    /// Pools work per channel on axis 1; global pools leave 1 x 1 maps.
    mutating func visitPool(_ i: Int, global: Bool) {
        let n = graph.nodes[i]
        rejectTracked(n, except: [0], "second input")
        guard let l = layouts[n.input(0)], let out = n.outputs.first, !out.isEmpty else { return }
        guard l.position(n.input(0), self) == 1, l.block == 1 else {
            reject(l, "\(n.label) pools them on an axis other than 1")
            return
        }
        guard requireOnlyFirstOutput(n, l) else { return }
        var o = l
        o.rank = rank(of: n.input(0), l)
        o.trailingOnes = global
        layouts[out] = o
    }

    mutating func visitUnary(_ i: Int) {
        let n = graph.nodes[i]
        rejectTracked(n, except: [0], "parameter")
        guard let l = layouts[n.input(0)] else { return }
        // Dropout's mask has the data's shape, so it carries the same channels.
        for o in n.outputs where !o.isEmpty { layouts[o] = l }
    }

    /// Elementwise ops with broadcasting. Tracked operands must agree on where the channels
    /// are and get tied; constants are sliced where they have the channel axis; any other
    /// operand must be known not to span the channels (size 1 there, or too low a rank).
    mutating func visitElementwise(_ i: Int) {
        let n = graph.nodes[i]
        let operands = n.inputs.filter { !$0.isEmpty }
        let tracked = operands.compactMap { layouts[$0] }
        guard let ref = tracked.first, let out = n.outputs.first, !out.isEmpty else { return }
        let units = spaces[ref.space].channels * ref.block
        func rejectAll(_ why: String) { for l in tracked { reject(l, why) } }
        for l in tracked.dropFirst() where l.axis != ref.axis || l.block != ref.block || spaces[l.space].channels != spaces[ref.space].channels {
            return rejectAll("\(n.label) combines channel maps laid out differently")
        }
        var rank: Int? = tracked.map { $0.rank ?? -1 }.max().flatMap { $0 < 0 ? nil : $0 }
        if tracked.contains(where: { $0.rank == nil }) { rank = nil }
        var trailingOnes = tracked.allSatisfy(\.trailingOnes)
        var slices: [(String, Int)] = []
        for name in operands where layouts[name] == nil {
            if let t = constants[name] {
                let pos = t.rank + ref.axis
                rank = rank.map { max($0, t.rank) }
                if pos < 0 { continue }
                if t.shape[(pos + 1)...].contains(where: { $0 != 1 }) { trailingOnes = false }
                if t.shape[pos] == units && units != 1 {
                    slices.append((name, pos))
                } else if t.shape[pos] != 1 {
                    return rejectAll("\(n.label) combines them with '\(name)' of shape \(t.shape)")
                }
            } else {
                guard let dims = shapes[name] else {
                    return rejectAll("\(n.label) combines them with '\(name)', whose shape is unknown")
                }
                rank = rank.map { max($0, dims.count) }
                let pos = dims.count + ref.axis
                if pos >= 0 {
                    guard case .value(1) = dims[pos] else {
                        return rejectAll("\(n.label) combines them with '\(name)', whose channels are not tracked")
                    }
                    trailingOnes = trailingOnes && dims[(pos + 1)...].allSatisfy { $0 == .value(1) }
                }
            }
        }
        for (name, axis) in slices { addSlice(name, axis: axis, block: ref.block, node: i, space: ref.space) }
        for l in tracked.dropFirst() { tie(ref.space, l.space) }
        let origins = Set(tracked.map { $0.origin ?? -1 })
        layouts[out] = ChannelLayout(space: ref.space, origin: origins.count == 1 ? ref.origin : nil, axis: ref.axis,
                                     rank: rank, block: ref.block, trailingOnes: trailingOnes)
    }

    // MARK: - Shape ops

    /// Flatten at the channel axis: channel c becomes the entries [c*S, (c+1)*S) of the last
    /// axis, S the (known) size of the dimensions after it.
    mutating func visitFlatten(_ i: Int) {
        let n = graph.nodes[i]
        let x = n.input(0)
        guard let l = layouts[x], let out = n.outputs.first, !out.isEmpty else { return }
        guard let r = rank(of: x, l) else { return reject(l, "\(n.label) flattens them from a value of unknown rank") }
        var axis = n.int("axis", default: 1)
        if axis < 0 { axis += r }
        guard axis == r + l.axis else { return reject(l, "\(n.label) flattens them together with other axes") }
        guard let trailing = trailingSize(of: x, l) else {
            return reject(l, "\(n.label) flattens a map whose spatial size is not known")
        }
        layouts[out] = ChannelLayout(space: l.space, origin: l.origin, axis: -1, rank: 2, block: l.block * trailing, trailingOnes: true)
    }

    /// Reshape with a constant target that keeps the axes before the channel axis and flattens
    /// the rest into one ([N, C, H, W] -> [N, C*H*W] or [N, -1]). An explicit C*H*W entry is
    /// rewritten. Or a Reshape that keeps the channel axis last and regroups only the axes
    /// before it ([B*S, C] <-> [B, S, C], as torch writes around Gemm): the last entry of its
    /// target, a constant or a Concat's last input, is rewritten.
    mutating func visitReshape(_ i: Int) {
        let n = graph.nodes[i]
        let x = n.input(0), shapeName = n.input(1)
        rejectTracked(n, except: [0], "shape")
        guard let l = layouts[x], let out = n.outputs.first, !out.isEmpty else { return }
        let why = "\(n.label) reshapes them"
        if l.axis == -1, let (count, last) = lastTargetEntry(shapeName, reader: i, space: l.space) {
            if let last {
                guard last.value == Int64(spaces[l.space].channels * l.block) else { return reject(l, why) }
                if checkEditable(last.initializer, node: last.node, space: l.space) {
                    spaces[l.space].edits.append(.shapeEntry(initializer: last.initializer, index: last.index, unitsPerChannel: l.block, node: last.node))
                }
            }
            layouts[out] = ChannelLayout(space: l.space, origin: l.origin, axis: -1, rank: count, block: l.block)
            return
        }
        guard let r = rank(of: x, l), let target = constants[shapeName], target.dtype == .int64, target.rank == 1 else {
            return reject(l, why)
        }
        let p = r + l.axis
        let t = target.array(of: Int64.self)
        let allowZero = n.int("allowzero", default: 0) != 0
        guard t.count == p + 1, let trailing = trailingSize(of: x, l),
              t.filter({ $0 == -1 }).count <= 1, t.allSatisfy({ $0 >= -1 }), !(allowZero && t.contains(0)) else {
            return reject(l, why)
        }
        let units = Int64(spaces[l.space].channels * l.block * trailing)
        guard t[p] == -1 || t[p] == units else { return reject(l, why) }
        if t[p] != -1, checkEditable(shapeName, node: i, space: l.space) {
            spaces[l.space].edits.append(.shapeEntry(initializer: shapeName, index: p, unitsPerChannel: l.block * trailing, node: i))
        }
        layouts[out] = ChannelLayout(space: l.space, origin: l.origin, axis: -1, rank: p + 1, block: l.block * trailing, trailingOnes: true)
    }

    /// The last entry of Reshape target `shape` when every other entry is a positive constant,
    /// -1 or computed at run time: (target length, entry value, the constant holding it, its
    /// index there, the node reading that constant). The target is a constant int64 vector or
    /// a Concat on axis 0 whose last input is a one-element int64 constant, or the last
    /// dimension of a value whose channels (of `space`) are last, read at run time (then the
    /// entry is nil: it follows the pruning by itself).
    private func lastTargetEntry(_ shape: String, reader: Int, space: Int) -> (Int, (value: Int64, initializer: String, index: Int, node: Int)?)? {
        if let t = constants[shape] {
            guard t.dtype == .int64, t.rank == 1, t.count >= 2 else { return nil }
            let v = t.array(of: Int64.self)
            guard v.dropLast().allSatisfy({ $0 == -1 || $0 > 0 }) else { return nil }
            return (v.count, (v[v.count - 1], shape, v.count - 1, reader))
        }
        guard let ci = producer[shape], graph.nodes[ci].isDefaultDomain, graph.nodes[ci].opType == "Concat",
              graph.nodes[ci].int("axis", default: 0) == 0, readersOf[shape, default: []] == [reader] else { return nil }
        let parts = graph.nodes[ci].inputs
        guard parts.count >= 2, let lastName = parts.last else { return nil }
        let t = constants[lastName]
        guard t.map({ $0.dtype == .int64 && $0.count == 1 }) ?? isLastDimension(lastName, of: { layouts[$0].map { $0.axis == -1 && $0.space == space } ?? false })
        else { return nil }
        var count = 0
        for part in parts {
            if let c = constants[part] {
                guard c.dtype == .int64, c.rank == 1, c.array(of: Int64.self).allSatisfy({ $0 == -1 || $0 > 0 }) else { return nil }
                count += c.count
            } else if let dims = shapes[part], dims.count == 1, case .value(let k) = dims[0] {
                count += k
            } else {
                return nil
            }
        }
        return (count, t.map { ($0.array(of: Int64.self)[0], lastName, 0, ci) })
    }

    /// `value` is [n] with n the last dimension of a value `accepted` says yes to: Shape, then
    /// Slice from -1 (or Gather of index -1), Squeeze / Unsqueeze / Cast.
    func isLastDimension(_ value: String, of accepted: (String) -> Bool, depth: Int = 0) -> Bool {
        guard depth < 8, let i = producer[value], graph.nodes[i].isDefaultDomain else { return false }
        let n = graph.nodes[i]
        func index(_ name: String) -> Int64? { constants[name].flatMap { $0.dtype == .int64 && $0.count == 1 ? $0.array(of: Int64.self)[0] : nil } }
        switch n.opType {
        case "Squeeze", "Unsqueeze", "Cast":
            return isLastDimension(n.input(0), of: accepted, depth: depth + 1)
        case "Slice", "Gather":
            let picksLast = n.opType == "Gather" ? index(n.input(1)) == -1
                : index(n.input(1)) == -1 && (index(n.input(2)) ?? 0) >= Int64(Int32.max)
                    && (n.input(3).isEmpty || index(n.input(3)) == 0) && (n.input(4).isEmpty || index(n.input(4)) == 1)
            guard picksLast, let (_, shape) = (producer[n.input(0)].map { ($0, graph.nodes[$0]) }), shape.isDefaultDomain,
                  shape.opType == "Shape", shape.attribute("start") == nil, shape.attribute("end") == nil else { return false }
            return accepted(shape.input(0))
        default:
            return false
        }
    }

    /// Reductions over axes other than the channel axis (x.mean([2, 3]) after a Conv).
    mutating func visitReduce(_ i: Int) {
        let n = graph.nodes[i]
        let x = n.input(0)
        rejectTracked(n, except: [0], "axes")
        guard let l = layouts[x], let out = n.outputs.first, !out.isEmpty else { return }
        var axes: [Int]?
        if case .ints(let a)? = n.attribute("axes") { axes = a.map { Int($0) } }
        if !n.input(1).isEmpty { axes = constants[n.input(1)].flatMap { $0.dtype == .int64 ? $0.array(of: Int64.self).map { Int($0) } : nil } }
        guard let r = rank(of: x, l), let axes, !axes.isEmpty else { return reject(l, "\(n.label) reduces over axes not known") }
        let p = r + l.axis
        let norm = Set(axes.map { $0 < 0 ? $0 + r : $0 })
        guard !norm.contains(p), l.block == 1, norm.allSatisfy({ $0 >= 0 && $0 < r }) else { return reject(l, "\(n.label) reduces over their axis") }
        var o = l
        if norm.isSuperset(of: (p + 1)..<r) { o.trailingOnes = true }
        if n.int("keepdims", default: 1) == 0 {
            o.rank = r - norm.count
            o.axis = (p - norm.filter { $0 < p }.count) - o.rank!
        }
        layouts[out] = o
    }

    /// Squeeze / Unsqueeze of axes other than the channel axis.
    mutating func visitSqueeze(_ i: Int) {
        let n = graph.nodes[i]
        let x = n.input(0)
        rejectTracked(n, except: [0], "axes")
        guard let l = layouts[x], let out = n.outputs.first, !out.isEmpty else { return }
        var axes: [Int]?
        if case .ints(let a)? = n.attribute("axes") { axes = a.map { Int($0) } }
        if !n.input(1).isEmpty { axes = constants[n.input(1)].flatMap { $0.dtype == .int64 ? $0.array(of: Int64.self).map { Int($0) } : nil } }
        guard let r = rank(of: x, l), let axes else { return reject(l, "\(n.label) changes their rank in a way not known") }
        let p = r + l.axis
        var o = l
        if n.opType == "Squeeze" {
            let norm = Set(axes.map { $0 < 0 ? $0 + r : $0 })
            guard !norm.contains(p), norm.allSatisfy({ $0 >= 0 && $0 < r }) else { return reject(l, "\(n.label) squeezes their axis") }
            o.rank = r - norm.count
            o.axis = (p - norm.filter { $0 < p }.count) - o.rank!
        } else {
            let newRank = r + axes.count
            let norm = Set(axes.map { $0 < 0 ? $0 + newRank : $0 })
            guard norm.count == axes.count, norm.allSatisfy({ $0 >= 0 && $0 < newRank }) else { return reject(l, "\(n.label) has invalid axes") }
            var k = -1, pos = 0
            for j in 0..<newRank where !norm.contains(j) {
                k += 1
                if k == p { pos = j; break }
            }
            o.rank = newRank
            o.axis = pos - newRank
        }
        layouts[out] = o
    }
}

extension ChannelLayout {
    /// The channel axis from the front, using the known rank of `value` when the layout
    /// does not know it.
    func position(_ value: String, _ analysis: ChannelAnalysis) -> Int? {
        analysis.rank(of: value, self).map { $0 + axis }
    }
}
