import KerfCore

/// MaxPool, GlobalMaxPool (the gradient goes to each window's first maximum) and AveragePool
/// (count_include_pad, ceil_mode): `kerf.training.MaxPoolGrad` / `AveragePoolGrad` with the
/// forward node's window attributes. (GlobalAveragePool: ReductionGradients.)
enum PoolingGradients {
    static let windowAttributes: Set<String> = ["auto_pad", "ceil_mode", "dilations", "kernel_shape", "pads", "strides"]

    static func register(_ r: inout [String: GradientRule]) {
        r["MaxPool"] = { c in
            guard c.outputGradients[0] != nil else { return [nil] }
            let attributes = c.node.attributes.filter { windowAttributes.contains($0.name) }
            return [c.emitter.emit1("MaxPoolGrad", [c.dY, c.input(0)], attributes, domain: NodeEmitter.domain, hint: c.hint("dX"))]
        }
        r["GlobalMaxPool"] = { c in
            [c.emitter.emit1("MaxPoolGrad", [c.dY, c.input(0)], [Attribute(name: "global", value: .int(1))], domain: NodeEmitter.domain,
                             hint: c.hint("dX"))]
        }
        r["AveragePool"] = { c in
            let attributes = c.node.attributes.filter { windowAttributes.contains($0.name) || $0.name == "count_include_pad" }
            return [c.emitter.emit1("AveragePoolGrad", [c.dY, c.emitter.shape(of: c.input(0))], attributes, domain: NodeEmitter.domain,
                                    hint: c.hint("dX"))]
        }
    }
}
