import FoundationEssentials
import KerfCore

/// Pointwise activations: one `kerf.training.ActivationGrad` node each, reading the forward
/// input or output (whichever the derivative is cheaper from) and the output gradient.
/// Derivatives at kinks follow PyTorch (Relu: 0 at 0; Clip: 1 at the bounds).
enum ActivationGradients {
    static func register(_ r: inout [String: GradientRule]) {
        // (op, kind, reads the output rather than the input)
        let simple: [(String, String, Bool)] = [
            ("Relu", "relu", true), ("Sigmoid", "sigmoid", true), ("Tanh", "tanh", true),
            ("Erf", "erf", false), ("HardSwish", "hardswish", false), ("Softplus", "softplus", false),
        ]
        for (op, kind, fromOutput) in simple {
            r[op] = { c in [activationGrad(c, kind: kind, reads: fromOutput ? c.output(0) : c.input(0))] }
        }
        r["LeakyRelu"] = { c in
            [activationGrad(c, kind: "leakyrelu", reads: c.input(0), alpha: try c.float("alpha", default: 0.01))]
        }
        r["Elu"] = { c in
            [activationGrad(c, kind: "elu", reads: c.input(0), alpha: try c.float("alpha", default: 1))]
        }
        r["HardSigmoid"] = { c in
            [activationGrad(c, kind: "hardsigmoid", reads: c.input(0), alpha: try c.float("alpha", default: 0.2),
                            beta: try c.float("beta", default: 0.5))]
        }
        r["Gelu"] = { c in
            let approximate = c.node.attribute("approximate").flatMap { v -> String? in
                if case .string(let d) = v { return String(decoding: d, as: UTF8.self) }
                return nil
            } ?? "none"
            guard approximate == "none" || approximate == "tanh" else {
                throw KerfError.invalidModel("Gelu approximate '\(approximate)' is not 'none' or 'tanh'")
            }
            return [activationGrad(c, kind: approximate == "tanh" ? "gelu_tanh" : "gelu", reads: c.input(0))]
        }
        r["Clip"] = { c in
            // Clip-11+: min and max are inputs 1 and 2 (optional); before, attributes.
            let e = c.emitter
            var inputs = [c.dY, c.input(0)]
            var attributes = [Attribute(name: "kind", value: .string(Data("clip".utf8)))]
            if c.emitter.opset >= 11 {
                inputs += [c.has(1) ? c.input(1) : "", c.has(2) ? c.input(2) : ""]
            } else {
                attributes.append(Attribute(name: "alpha", value: .float(try c.float("min", default: -.greatestFiniteMagnitude))))
                attributes.append(Attribute(name: "beta", value: .float(try c.float("max", default: .greatestFiniteMagnitude))))
            }
            return [e.emit1("ActivationGrad", inputs, attributes, domain: NodeEmitter.domain, hint: c.hint("dX")), nil, nil]
        }
    }

    private static func activationGrad(_ c: GradientContext, kind: String, reads value: String,
                                       alpha: Float? = nil, beta: Float? = nil) -> String {
        var attributes = [Attribute(name: "kind", value: .string(Data(kind.utf8)))]
        if let alpha { attributes.append(Attribute(name: "alpha", value: .float(alpha))) }
        if let beta { attributes.append(Attribute(name: "beta", value: .float(beta))) }
        return c.emitter.emit1("ActivationGrad", [c.dY, value], attributes, domain: NodeEmitter.domain, hint: c.hint("dX"))
    }
}
