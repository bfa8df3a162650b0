import KerfCore

/// Arithmetic with NumPy broadcasting (each input's gradient is summed back to its shape) and
/// elementwise math: Add, Sub, Mul, Div, Pow, Sum, Neg, Sqrt, Exp, Log, Reciprocal, Abs, Where,
/// and the value-preserving Identity, Cast (between float types), inference-mode Dropout, Expand.
enum ElementwiseGradients {
    static func register(_ r: inout [String: GradientRule]) {
        r["Add"] = { c in
            let e = c.emitter
            return [c.needs(0) ? e.sumToShape(c.dY, of: c.input(0), hint: c.hint("dA")) : nil,
                    c.needs(1) ? e.sumToShape(c.dY, of: c.input(1), hint: c.hint("dB")) : nil]
        }
        r["Sum"] = { c in
            (0..<c.node.inputs.count).map { i in c.needs(i) ? c.emitter.sumToShape(c.dY, of: c.input(i), hint: c.hint("d\(i)")) : nil }
        }
        r["Sub"] = { c in
            let e = c.emitter
            return [c.needs(0) ? e.sumToShape(c.dY, of: c.input(0), hint: c.hint("dA")) : nil,
                    c.needs(1) ? e.sumToShape(e.neg(c.dY, hint: c.hint("negdY")), of: c.input(1), hint: c.hint("dB")) : nil]
        }
        r["Mul"] = { c in
            let e = c.emitter
            return [c.needs(0) ? e.sumToShape(e.mul(c.dY, c.input(1), hint: c.hint("dAfull")), of: c.input(0), hint: c.hint("dA")) : nil,
                    c.needs(1) ? e.sumToShape(e.mul(c.dY, c.input(0), hint: c.hint("dBfull")), of: c.input(1), hint: c.hint("dB")) : nil]
        }
        r["Div"] = { c in
            // d(a/b)/da = 1/b; d(a/b)/db = -(a/b)/b.
            let e = c.emitter
            let dAfull = c.needs(0) || c.needs(1) ? e.emit1("Div", [c.dY, c.input(1)], hint: c.hint("dAfull")) : ""
            var dB: String?
            if c.needs(1) {
                let t = e.mul(dAfull, c.output(0), hint: c.hint("dBneg"))
                dB = e.sumToShape(e.neg(t, hint: c.hint("dBfull")), of: c.input(1), hint: c.hint("dB"))
            }
            return [c.needs(0) ? e.sumToShape(dAfull, of: c.input(0), hint: c.hint("dA")) : nil, dB]
        }
        r["Pow"] = { c in
            // d(a^b)/da = b·a^(b-1); d(a^b)/db = a^b·ln(a).
            let e = c.emitter
            let a = c.input(0), b = c.input(1), dtype = e.dtype(of: a)
            var dA: String?, dB: String?
            if c.needs(0) {
                let bMinusOne = e.emit1("Sub", [b, e.scalar(1, e.dtype(of: b))], hint: c.hint("bm1"))
                let power = e.emit1("Pow", [a, bMinusOne], hint: c.hint("pow"))
                let local = e.mul(e.castIfNeeded(b, to: dtype, hint: c.hint("b")), power, hint: c.hint("local"))
                dA = e.sumToShape(e.mul(c.dY, local, hint: c.hint("dAfull")), of: a, hint: c.hint("dA"))
            }
            if c.needs(1) {
                let logA = e.emit1("Log", [a], hint: c.hint("loga"))
                let local = e.mul(c.output(0), logA, hint: c.hint("ylog"))
                dB = e.sumToShape(e.mul(c.dY, local, hint: c.hint("dBfull")), of: b, hint: c.hint("dB"))
            }
            return [dA, dB]
        }
        r["Neg"] = { c in [c.emitter.neg(c.dY, hint: c.hint("dX"))] }
        r["Sqrt"] = { c in
            // d√x = 1/(2√x)
            let e = c.emitter
            let twice = e.mul(c.output(0), e.scalar(2, e.dtype(of: c.output(0))), hint: c.hint("twoY"))
            return [e.emit1("Div", [c.dY, twice], hint: c.hint("dX"))]
        }
        r["Exp"] = { c in [c.emitter.mul(c.dY, c.output(0), hint: c.hint("dX"))] }
        r["Log"] = { c in [c.emitter.emit1("Div", [c.dY, c.input(0)], hint: c.hint("dX"))] }
        r["Reciprocal"] = { c in
            // d(1/x) = -1/x² = -y²
            let e = c.emitter
            let ySquared = e.mul(c.output(0), c.output(0), hint: c.hint("y2"))
            return [e.neg(e.mul(c.dY, ySquared, hint: c.hint("dXneg")), hint: c.hint("dX"))]
        }
        r["Abs"] = { c in
            let e = c.emitter
            return [e.mul(c.dY, e.emit1("Sign", [c.input(0)], hint: c.hint("sign")), hint: c.hint("dX"))]
        }
        for name in ["Identity", "Dropout"] {
            // Dropout in an inference graph passes its input through (training-mode Dropout is
            // rewritten before differentiation).
            r[name] = { c in [c.dY] }
        }
        r["Cast"] = { c in
            let e = c.emitter, from = e.dtype(of: c.input(0))
            if from == e.dtype(of: c.output(0)) { return [c.dY] }
            return [e.emit1("Cast", [c.dY], [Attribute(name: "to", value: .int(Int64(from.rawValue)))], hint: c.hint("dX"))]
        }
        r["Expand"] = { c in [c.emitter.sumToShape(c.dY, of: c.input(0), hint: c.hint("dX")), nil] }
        r["Where"] = { c in
            let e = c.emitter
            var out: [String?] = [nil, nil, nil]
            for i in [1, 2] where c.needs(i) {
                let zero = e.scalar(0, e.dtype(of: c.output(0)))
                let picked = e.emit1("Where", [c.input(0), i == 1 ? c.dY : zero, i == 1 ? zero : c.dY], hint: c.hint("picked\(i)"))
                out[i] = e.sumToShape(picked, of: c.input(i), hint: c.hint("d\(i)"))
            }
            return out
        }
    }
}
