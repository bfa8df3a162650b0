import KerfCore

/// Softmax, LogSoftmax and LayerNormalization, each through a `kerf.training` gradient op.
enum NormalizationGradients {
    static func register(_ r: inout [String: GradientRule]) {
        for (op, log) in [("Softmax", false), ("LogSoftmax", true)] {
            r[op] = { c in
                let e = c.emitter
                // Before opset 13 the input is coerced to 2-D at the axis (default 1); from 13 one axis (default -1).
                let coerced = e.opset < 13
                let axis = try c.int("axis", default: coerced ? 1 : -1)
                let attributes = [Attribute(name: "axis", value: .int(Int64(axis))),
                                  Attribute(name: "log", value: .int(log ? 1 : 0)),
                                  Attribute(name: "coerced", value: .int(coerced ? 1 : 0))]
                return [e.emit1("SoftmaxGrad", [c.dY, c.output(0)], attributes, domain: NodeEmitter.domain, hint: c.hint("dX"))]
            }
        }
        r["LayerNormalization"] = { c in
            let e = c.emitter
            guard c.outputGradients.dropFirst().allSatisfy({ $0 == nil }) else {
                throw KerfError.unsupported("gradients through LayerNormalization's Mean and InvStdDev outputs")
            }
            let attributes = [Attribute(name: "axis", value: .int(Int64(try c.int("axis", default: -1)))),
                              Attribute(name: "epsilon", value: .float(try c.float("epsilon", default: 1e-5)))]
            let outs = e.emit("LayerNormalizationGrad", [c.dY, c.input(0), c.input(1)], attributes, domain: NodeEmitter.domain,
                              outputs: 3, hint: c.hint("dX"))
            return [c.needs(0) ? outs[0] : nil, c.needs(1) ? outs[1] : nil, c.has(2) && c.needs(2) ? outs[2] : nil]
        }
    }
}
