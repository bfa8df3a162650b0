import KerfCore

/// Indexing: Gather, GatherElements, GatherND, the Scatter family, OneHot, NonZero.
extension ShapeRules {
    static let indexing: [String: ShapeRule] = {
        var t = each(["ScatterElements", "ScatterND", "Scatter"], sameAsInput)
        t["Gather"] = gather
        t["GatherElements"] = { c in c.set(0, dtype: c.dtype(0), shape: c.shape(1)) }
        t["GatherND"] = gatherND
        t["OneHot"] = oneHot
        t["NonZero"] = { c in c.set(0, dtype: .int64, shape: c.rank(0).map { [.value($0), .unknown] }) }
        return t
    }()

    /// Gather along `axis`: data.shape[..<axis] + indices.shape + data.shape[(axis+1)...].
    /// Picks known elements out of a known 1-D data tensor (Shape → Gather).
    static func gather(_ c: inout ShapeRuleContext) {
        c.set(0, dtype: c.dtype(0), shape: nil)
        guard let data = c.shape(0), let indices = c.shape(1) else { return }
        guard let axis = c.axis(c.int("axis", default: 0), rank: data.count) else { return }
        let (rank, o) = data.count.addingReportingOverflow(indices.count - 1)
        guard !o, rank >= 0 else { return }
        c.set(0, dtype: c.dtype(0), shape: Array(data[..<axis]) + indices + Array(data[(axis + 1)...]))
        guard let v = c.value(0), v.shape.count == 1, let picks = c.value(1), let ints = picks.integers else { return }
        let n = v.elements.count
        var out: [Dim] = []
        for i in ints {
            let j = i < 0 ? i + n : i
            guard j >= 0, j < n else {
                c.fail("index \(i) is outside \(n) elements")
                return
            }
            out.append(v.elements[j])
        }
        c.setValue(0, KnownValue(shape: picks.shape, elements: out))
    }

    /// GatherND: indices.shape[..<-1] + data.shape[(batch_dims + indices.shape[-1])...].
    static func gatherND(_ c: inout ShapeRuleContext) {
        c.set(0, dtype: c.dtype(0), shape: nil)
        guard let data = c.shape(0), let indices = c.shape(1), let last = indices.last?.intValue else { return }
        let batch = c.int("batch_dims", default: 0)
        let (tail, o) = batch.addingReportingOverflow(last)
        guard batch >= 0, !o, tail <= data.count, batch < indices.count else {
            c.fail("batch_dims \(batch) and index depth \(last) do not fit data of rank \(data.count)")
            return
        }
        c.set(0, dtype: c.dtype(0), shape: Array(indices.dropLast()) + Array(data[tail...]))
    }

    /// OneHot: the indices' shape with `depth` inserted at `axis`, of the values' dtype.
    static func oneHot(_ c: inout ShapeRuleContext) {
        c.set(0, dtype: c.dtype(2), shape: nil)
        guard let indices = c.shape(0) else { return }
        let rank = indices.count + 1
        guard let axis = c.axis(c.int("axis", default: -1), rank: rank) else { return }
        var depth: Dim = .unknown
        if let d = c.doubles(1), d.count == 1, d[0] >= 1, d[0] < 1e15 { depth = .value(Int(d[0])) }
        var out = indices
        out.insert(depth, at: axis)
        c.set(0, dtype: c.dtype(2), shape: out)
    }
}
