import KerfCore

/// Reductions over axes (attribute or input by opset, keepdims, noop_with_empty_axes),
/// ArgMax/ArgMin, TopK and the classification losses.
extension ShapeRules {
    static let reduction: [String: ShapeRule] = {
        var t = each(["ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
                      "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare"], reduce)
        t["ArgMax"] = argReduce
        t["ArgMin"] = argReduce
        t["TopK"] = topK
        t["NegativeLogLikelihoodLoss"] = classificationLoss
        t["SoftmaxCrossEntropyLoss"] = classificationLoss
        return t
    }()

    /// NegativeLogLikelihoodLoss / SoftmaxCrossEntropyLoss: the loss is a scalar, or of the labels'
    /// shape with reduction none; SoftmaxCrossEntropyLoss's log_prob is like the scores.
    static func classificationLoss(_ c: inout ShapeRuleContext) {
        c.set(0, dtype: c.dtype(0), shape: (c.string("reduction") ?? "mean") == "none" ? c.shape(1) : [])
        if c.node.outputs.count > 1 { c.set(1, c.fact(0)) }
    }

    /// Axes from input 1 when present, else the `axes` attribute; empty axes reduce every dim
    /// unless `noop_with_empty_axes` is set.
    static func reduce(_ c: inout ShapeRuleContext) {
        c.set(0, dtype: c.dtype(0), shape: nil)
        guard let xs = c.shape(0) else { return }
        let keep = c.int("keepdims", default: 1) != 0
        let listed: [Int]
        if c.has(1) {
            guard let v = c.integers(1) else {
                // Unknown axes: the rank survives only with keepdims.
                if keep { c.set(0, dtype: c.dtype(0), shape: Array(repeating: .unknown, count: xs.count)) }
                return
            }
            listed = v
        } else {
            listed = c.ints("axes") ?? []
        }
        if listed.isEmpty, c.int("noop_with_empty_axes", default: 0) != 0 {
            c.set(0, c.fact(0))
            return
        }
        guard let axes = listed.isEmpty ? Array(0..<xs.count) : c.axes(listed, rank: xs.count) else { return }
        var out: [Dim] = []
        for (i, d) in xs.enumerated() {
            if !axes.contains(i) { out.append(d) } else if keep { out.append(.value(1)) }
        }
        c.set(0, dtype: c.dtype(0), shape: out)
        if c.node.opType == "ReduceProd" || c.node.opType == "ReduceSum", let v = c.value(0), v.shape.count == 1, !keep || axes == [0] {
            let reduced = c.node.opType == "ReduceProd" ? Dim.product(of: v.elements) : v.elements.reduce(Dim.value(0), Dim.sum)
            c.setValue(0, keep ? KnownValue(vector: [reduced]) : KnownValue(scalar: reduced))
        }
    }

    /// ArgMax/ArgMin: int64, `axis` removed (or kept as 1).
    static func argReduce(_ c: inout ShapeRuleContext) {
        c.set(0, dtype: .int64, shape: nil)
        guard let xs = c.shape(0), let axis = c.axis(c.int("axis", default: 0), rank: xs.count) else { return }
        var out = xs
        if c.int("keepdims", default: 1) != 0 { out[axis] = .value(1) } else { out.remove(at: axis) }
        c.set(0, dtype: .int64, shape: out)
    }

    /// TopK: values and int64 indices, `axis` resized to K (input 1, or attribute `k` before opset 10).
    static func topK(_ c: inout ShapeRuleContext) {
        c.set(0, dtype: c.dtype(0), shape: nil)
        c.set(1, dtype: .int64, shape: nil)
        guard let xs = c.shape(0), let axis = c.axis(c.int("axis", default: -1), rank: xs.count) else { return }
        var k: Dim = .unknown
        if let v = c.value(1), v.elements.count == 1 { k = v.elements[0] } else if !c.has(1), let a = c.int("k") { k = .value(a) }
        if let n = k.intValue, let size = xs[axis].intValue, n > size {
            c.fail("K = \(n) exceeds the axis size \(size)")
            k = .unknown
        }
        if case .value(let n) = k, n < 0 { k = .unknown }
        var out = xs
        out[axis] = k
        c.set(0, dtype: c.dtype(0), shape: out)
        c.set(1, dtype: .int64, shape: out)
    }
}
