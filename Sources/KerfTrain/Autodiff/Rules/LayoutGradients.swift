import KerfCore

/// Ops that move values without arithmetic: Reshape, Flatten, Squeeze, Unsqueeze, Transpose,
/// Concat, Split, Slice, Gather.
enum LayoutGradients {
    static func register(_ r: inout [String: GradientRule]) {
        for op in ["Reshape", "Flatten", "Squeeze", "Unsqueeze"] {
            r[op] = { c in [c.emitter.reshape(c.dY, like: c.input(0), hint: c.hint("dX")), nil] }
        }
        r["Transpose"] = { c in
            let e = c.emitter
            let rank = try e.requireRank(of: c.input(0), for: c.node)
            let perm = try c.ints("perm") ?? Array((0..<rank).reversed())
            guard perm.count == rank, Set(perm) == Set(0..<rank) else {
                throw KerfError.invalidModel("perm \(perm) is not a permutation of \(rank) axes")
            }
            var inverse = [Int](repeating: 0, count: rank)
            for (i, p) in perm.enumerated() { inverse[p] = i }
            return [e.transpose(c.dY, perm: inverse, hint: c.hint("dX"))]
        }
        r["Concat"] = { c in try concat(c) }
        r["Split"] = { c in try split(c) }
        r["Slice"] = { c in
            // Slice-10+: starts, ends, axes, steps are inputs; Slice-1 attributes.
            let e = c.emitter
            var inputs = [c.dY, e.shape(of: c.input(0))]
            var attributes: [Attribute] = []
            if e.opset >= 10 {
                inputs += (1...4).map { c.has($0) ? c.input($0) : "" }
            } else {
                for name in ["starts", "ends", "axes"] {
                    if let v = try c.ints(name) { attributes.append(Attribute(name: name, value: .ints(v.map(Int64.init)))) }
                }
            }
            return [e.emit1("SliceGrad", inputs, attributes, domain: NodeEmitter.domain, hint: c.hint("dX")), nil, nil, nil, nil]
        }
        r["Gather"] = { c in
            let e = c.emitter
            let axis = Attribute(name: "axis", value: .int(Int64(try c.int("axis", default: 0))))
            return [e.emit1("GatherGrad", [c.dY, c.input(1), e.shape(of: c.input(0))], [axis], domain: NodeEmitter.domain,
                            hint: c.hint("dX")), nil]
        }
    }

    /// Each input's part of dY along the axis: a Split with the inputs' sizes on that axis.
    private static func concat(_ c: GradientContext) throws -> [String?] {
        let e = c.emitter
        let rank = try e.requireRank(of: c.input(0), for: c.node)
        var axis = try c.int("axis", default: 0)
        if axis < 0 { axis += rank }
        guard axis >= 0, axis < rank else { throw KerfError.invalidModel("Concat axis out of range") }
        let attributes = [Attribute(name: "axis", value: .int(Int64(axis)))]
        let count = c.node.inputs.count
        let sizes: String
        if let known = try staticSizes(c, axis: axis) {
            if e.opset < 13 {
                let parts = e.emit("Split", [c.dY], attributes + [Attribute(name: "split", value: .ints(known.map(Int64.init)))],
                                   outputs: count, hint: c.hint("dX"))
                return (0..<count).map { c.needs($0) ? parts[$0] : nil }
            }
            sizes = e.int64s(known)
        } else {
            guard e.opset >= 13 else {
                throw KerfError.unsupported("the gradient of \(c.node.label) needs static sizes on the axis before opset 13")
            }
            let each = (0..<count).map { i in
                e.emit1("Gather", [e.shape(of: c.input(i)), e.int64s([axis])], hint: c.hint("size\(i)"))
            }
            sizes = e.emit1("Concat", each, [Attribute(name: "axis", value: .int(0))], hint: c.hint("sizes"))
        }
        let parts = e.emit("Split", [c.dY, sizes], attributes, outputs: count, hint: c.hint("dX"))
        return (0..<count).map { c.needs($0) ? parts[$0] : nil }
    }

    private static func staticSizes(_ c: GradientContext, axis: Int) throws -> [Int]? {
        var sizes: [Int] = []
        for i in c.node.inputs.indices {
            guard let shape = c.emitter.types.shape(of: c.input(i)), axis < shape.count, case .value(let n) = shape[axis] else { return nil }
            sizes.append(n)
        }
        return sizes
    }

    /// dX = the outputs' gradients concatenated along the axis (zeros where an output has none).
    private static func split(_ c: GradientContext) throws -> [String?] {
        let e = c.emitter
        let rank = try e.requireRank(of: c.input(0), for: c.node)
        var axis = try c.int("axis", default: 0)
        if axis < 0 { axis += rank }
        let parts = c.node.outputs.indices.map { i in
            c.outputGradients[i] ?? e.zeros(like: c.output(i), hint: c.hint("zero\(i)"))
        }
        let dX = e.emit1("Concat", parts, [Attribute(name: "axis", value: .int(Int64(axis)))], hint: c.hint("dX"))
        return [dX, nil]
    }
}
