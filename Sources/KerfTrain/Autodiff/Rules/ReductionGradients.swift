import KerfCore

/// ReduceSum, ReduceMean and GlobalAveragePool: dY broadcast back over the reduced axes (divided
/// by the number of elements each output averaged).
enum ReductionGradients {
    static func register(_ r: inout [String: GradientRule]) {
        r["ReduceSum"] = { c in [try reduce(c, mean: false, axesFromInput: c.emitter.opset >= 13), nil] }
        r["ReduceMean"] = { c in [try reduce(c, mean: true, axesFromInput: c.emitter.opset >= 18), nil] }
        r["GlobalAveragePool"] = { c in
            let e = c.emitter
            return [averageBack(c, e.emit1("Expand", [c.dY, e.shape(of: c.input(0))], hint: c.hint("spread")))]
        }
    }

    private static func reduce(_ c: GradientContext, mean: Bool, axesFromInput: Bool) throws -> String {
        let e = c.emitter
        let x = c.input(0)
        let keepDims = try c.int("keepdims", default: 1) != 0
        var dY = c.dY
        let axesAttribute = try c.ints("axes"), noop = try c.int("noop_with_empty_axes", default: 0) != 0
        let reducesAll = !c.has(1) && (axesFromInput || axesAttribute == nil) && !noop
        if !keepDims && !reducesAll {  // a scalar dY broadcasts as it is
            let rank = try e.requireRank(of: x, for: c.node)
            let axes: [Int]
            if axesFromInput {
                if c.has(1) {
                    guard let known = c.knownInts(1) else {
                        throw KerfError.unsupported("the gradient of \(c.node.label) needs constant axes")
                    }
                    axes = known
                } else {
                    axes = try c.int("noop_with_empty_axes", default: 0) != 0 ? [] : Array(0..<rank)
                }
            } else {
                axes = try c.ints("axes") ?? Array(0..<rank)
            }
            let normalized = axes.map { $0 < 0 ? $0 + rank : $0 }.sorted()
            if !normalized.isEmpty { dY = e.unsqueeze(dY, axes: normalized, hint: c.hint("kept")) }
        }
        let spread = e.emit1("Expand", [dY, e.shape(of: x)], hint: c.hint(mean ? "spread" : "dX"))
        return mean ? averageBack(c, spread) : spread
    }

    /// `spread` divided by how many input elements each output element averaged.
    private static func averageBack(_ c: GradientContext, _ spread: String) -> String {
        let e = c.emitter
        let dtype = e.dtype(of: c.input(0))
        let to = [Attribute(name: "to", value: .int(Int64(dtype.rawValue)))]
        let inCount = e.emit1("Cast", [e.emit1("Size", [c.input(0)], hint: c.hint("nx"))], to, hint: c.hint("nxf"))
        let outCount = e.emit1("Cast", [e.emit1("Size", [c.output(0)], hint: c.hint("ny"))], to, hint: c.hint("nyf"))
        let ratio = e.emit1("Div", [outCount, inCount], hint: c.hint("ratio"))
        return e.mul(spread, ratio, hint: c.hint("dX"))
    }
}
