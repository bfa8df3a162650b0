import KerfCore

/// MatMul (batched, broadcasting, 1-D operands) and Gemm (transA/transB, alpha, beta, C).
enum LinearGradients {
    static func register(_ r: inout [String: GradientRule]) {
        r["MatMul"] = { c in try matMul(c) }
        r["Gemm"] = { c in try gemm(c) }
    }

    /// Y = A·B. dA = dY·Bᵀ, dB = Aᵀ·dY, each summed over broadcast batch axes. A 2-D B (a
    /// weight) is handled as one GEMM over the flattened batch rows. 1-D operands are
    /// promoted as NumPy's matmul does: A to [1, k], B to [k, 1].
    private static func matMul(_ c: GradientContext) throws -> [String?] {
        let e = c.emitter
        let a = c.input(0), b = c.input(1)
        let rankA = try e.requireRank(of: a, for: c.node), rankB = try e.requireRank(of: b, for: c.node)
        guard rankA >= 1, rankB >= 1 else { throw KerfError.invalidModel("MatMul of a scalar") }
        if rankB == 2 && rankA >= 2 {
            // Rows of A (all batch axes flattened) times the weight B [k, n].
            let a2 = rankA == 2 ? a : e.emit1("Flatten", [a], [Attribute(name: "axis", value: .int(Int64(rankA - 1)))], hint: c.hint("A2"))
            let dY2 = rankA == 2 ? c.dY : e.emit1("Flatten", [c.dY], [Attribute(name: "axis", value: .int(Int64(rankA - 1)))], hint: c.hint("dY2"))
            var dA: String?
            if c.needs(0) {
                let rows = e.gemm(dY2, b, transB: true, hint: c.hint("dA2"))
                dA = rankA == 2 ? rows : e.reshape(rows, like: a, hint: c.hint("dA"))
            }
            return [dA, c.needs(1) ? e.gemm(a2, dY2, transA: true, hint: c.hint("dB")) : nil]
        }
        // General case: promote 1-D operands, batched products, sum back to each shape.
        let a2 = rankA == 1 ? e.unsqueeze(a, axes: [0], hint: c.hint("A2")) : a
        let b2 = rankB == 1 ? e.unsqueeze(b, axes: [1], hint: c.hint("B2")) : b
        var dY2 = c.dY
        if rankA == 1 { dY2 = e.unsqueeze(dY2, axes: [-2], hint: c.hint("dYrow")) }
        if rankB == 1 { dY2 = e.unsqueeze(dY2, axes: [-1], hint: c.hint("dYcol")) }
        var dA: String?, dB: String?
        if c.needs(0) {
            let bT = e.swapLastAxes(b2, rank: max(rankB, 2), hint: c.hint("Bt"))
            let full = e.emit1("MatMul", [dY2, bT], hint: c.hint("dAfull"))
            dA = rankA == 1 ? e.reshape(e.sumToShape(full, of: a2, hint: c.hint("dA2")), like: a, hint: c.hint("dA"))
                            : e.sumToShape(full, of: a, hint: c.hint("dA"))
        }
        if c.needs(1) {
            let aT = e.swapLastAxes(a2, rank: max(rankA, 2), hint: c.hint("At"))
            let full = e.emit1("MatMul", [aT, dY2], hint: c.hint("dBfull"))
            dB = rankB == 1 ? e.reshape(e.sumToShape(full, of: b2, hint: c.hint("dB2")), like: b, hint: c.hint("dB"))
                            : e.sumToShape(full, of: b, hint: c.hint("dB"))
        }
        return [dA, dB]
    }

    /// Y = alpha·A'·B' + beta·C with A' = transA ? Aᵀ : A (likewise B'); C broadcasts to Y.
    private static func gemm(_ c: GradientContext) throws -> [String?] {
        let e = c.emitter
        let a = c.input(0), b = c.input(1)
        let transA = try c.int("transA", default: 0) != 0, transB = try c.int("transB", default: 0) != 0
        let alpha = try c.float("alpha", default: 1), beta = try c.float("beta", default: 1)
        var dA: String?, dB: String?, dC: String?
        if c.needs(0) {
            switch (transA, transB) {
            case (false, false): dA = e.gemm(c.dY, b, transB: true, alpha: alpha, hint: c.hint("dA"))
            case (false, true): dA = e.gemm(c.dY, b, alpha: alpha, hint: c.hint("dA"))
            case (true, false): dA = e.gemm(b, c.dY, transB: true, alpha: alpha, hint: c.hint("dA"))
            case (true, true): dA = e.gemm(b, c.dY, transA: true, transB: true, alpha: alpha, hint: c.hint("dA"))
            }
        }
        if c.needs(1) {
            switch (transA, transB) {
            case (false, false): dB = e.gemm(a, c.dY, transA: true, alpha: alpha, hint: c.hint("dB"))
            case (false, true): dB = e.gemm(c.dY, a, transA: true, alpha: alpha, hint: c.hint("dB"))
            case (true, false): dB = e.gemm(a, c.dY, alpha: alpha, hint: c.hint("dB"))
            case (true, true): dB = e.gemm(c.dY, a, transA: true, transB: true, alpha: alpha, hint: c.hint("dB"))
            }
        }
        if c.needs(2) {
            let scaled = beta == 1 ? c.dY : e.mul(c.dY, e.scalar(Double(beta), e.dtype(of: c.input(2))), hint: c.hint("dCfull"))
            dC = e.sumToShape(scaled, of: c.input(2), hint: c.hint("dC"))
        }
        return [dA, dB, dC]
    }
}
