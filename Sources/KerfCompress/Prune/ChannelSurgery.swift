import KerfCore

// The rewrite: given which channels each group keeps, build the new constants, node
// attributes and declared shapes. Nothing here touches the graph; the caller commits the
// result only once all of it is built.

/// The kept channels of one group.
struct ChannelPlan {
    var channels: Int
    var keep: [Int]
}

/// Everything channel pruning changes, ready to be committed.
struct ChannelRewrite {
    /// New tensors by initializer name.
    var tensors: [String: Tensor] = [:]
    /// The first node that reads each rewritten initializer (for the report).
    var readers: [String: Int] = [:]
    /// Replacement nodes by index in `graph.nodes`.
    var nodes: [Int: Node] = [:]
    /// The new `graph.valueInfo`.
    var valueInfo: [ValueInfo] = []
}

/// Builds the rewrite of `graph` for `plans` (keyed by group root: its first space).
func channelRewrite(_ graph: Graph, found: ChannelGroups, plans: [Int: ChannelPlan]) throws -> ChannelRewrite {
    var out = ChannelRewrite()
    var planOfSpace: [Int: ChannelPlan] = [:]
    for group in found.groups { if let p = plans[group[0]] { for s in group { planOfSpace[s] = p } } }
    let initializers = Dictionary(graph.initializers.map { ($0.name, $0.tensor) }, uniquingKeysWith: { a, _ in a })
    var slicedAxes: [String: Set<Int>] = [:]

    for (s, space) in found.spaces.enumerated() {
        guard let plan = planOfSpace[s] else { continue }
        for edit in space.edits {
            switch edit {
            case .slice(let name, let axis, let block, let node, let segments):
                guard slicedAxes[name, default: []].insert(axis).inserted else {
                    throw KerfError.internal("channel pruning would slice '\(name)' twice along axis \(axis)")
                }
                let t = out.tensors[name] ?? initializers[name]!
                guard t.shape[axis] == plan.channels * block * segments else {
                    throw KerfError.internal("'\(name)' has \(t.shape[axis]) entries along axis \(axis), expected \(plan.channels * block * segments)")
                }
                let keep = (0..<segments).flatMap { s in plan.keep.map { s * plan.channels + $0 } }
                out.tensors[name] = try sliced(t, axis: axis, keep: keep, block: block)
                if out.readers[name] == nil { out.readers[name] = node }
            case .depthwiseGroup(let node):
                var n = out.nodes[node] ?? graph.nodes[node]
                n.attributes.removeAll { $0.name == "group" }
                n.attributes.append(Attribute(name: "group", value: .int(Int64(plan.keep.count))))
                out.nodes[node] = n
            case .shapeEntry(let name, let index, let units, let node):
                var t = out.tensors[name] ?? initializers[name]!
                t.withMutableElements(as: Int64.self) { $0[index] = Int64(plan.keep.count * units) }
                out.tensors[name] = t
                if out.readers[name] == nil { out.readers[name] = node }
            }
        }
    }

    out.valueInfo = graph.valueInfo.compactMap { v in
        guard let l = found.layouts[v.name], let plan = planOfSpace[l.space] else { return v }
        if l.merged { return nil }
        guard case .tensor(let dtype, let dims?)? = v.type else { return v }
        let pos = dims.count + l.axis
        // A declaration that does not match what Kerf tracked is dropped rather than left stale
        // (ONNX requires a shape on every value_info type, so it cannot just lose its shape).
        guard pos >= 0, pos < dims.count, case .value(let d) = dims[pos], d == plan.channels * l.block else {
            if pos >= 0, pos < dims.count, case .value = dims[pos] { return nil }
            return v  // symbolic or unknown: still true
        }
        var w = v
        var newDims = dims
        newDims[pos] = .value(plan.keep.count * l.block)
        w.type = .tensor(dtype: dtype, shape: newDims)
        return w
    }
    return out
}

/// `t` with only the kept channels along `axis`, each channel `block` consecutive entries.
/// Works on any fixed-size dtype (bytes are copied).
func sliced(_ t: Tensor, axis: Int, keep: [Int], block: Int) throws -> Tensor {
    var shape = t.shape
    shape[axis] = keep.count * block
    let outer = t.shape[..<axis].reduce(1, *)
    let chunk = block * t.shape[(axis + 1)...].reduce(1, *) * t.dtype.byteSize
    let rowIn = t.shape[axis] / block * chunk, rowOut = keep.count * chunk
    let result = try Tensor(uninitialized: t.dtype, shape: shape)  // fresh storage: written below
    guard chunk > 0 else { return result }
    let src = t.bytes, dst = result.storage.pointer
    for o in 0..<outer {
        for (j, c) in keep.enumerated() {
            (dst + o * rowOut + j * chunk).copyMemory(from: src.baseAddress! + o * rowIn + c * chunk, byteCount: chunk)
        }
    }
    return result
}
