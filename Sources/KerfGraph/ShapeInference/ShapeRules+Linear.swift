import KerfCore

/// Matrix products: MatMul (batched, broadcasting, 1-D operands), Gemm, the integer and
/// quantized forms, and Einsum.
extension ShapeRules {
    static let linear: [String: ShapeRule] = [
        "MatMul": { c in c.set(0, dtype: c.dtype(0), shape: matMulShape(&c)) },
        "MatMulInteger": { c in c.set(0, dtype: .int32, shape: matMulShape(&c)) },
        "QLinearMatMul": { c in c.set(0, dtype: c.dtype(7) ?? c.dtype(0), shape: matMulShape(&c, a: 0, b: 3)) },
        "Gemm": gemm,
        "Einsum": einsum,
    ]

    /// numpy.matmul's shape of inputs `a` and `b`: [..., n, k] x [..., k, m] -> [..., n, m] with
    /// batch dims broadcast; a 1-D operand gains a dim of 1 that the result drops.
    static func matMulShape(_ c: inout ShapeRuleContext, a: Int = 0, b: Int = 1) -> [Dim]? {
        guard var x = c.shape(a), var y = c.shape(b) else { return nil }
        guard !x.isEmpty, !y.isEmpty else {
            c.fail("MatMul of a scalar")
            return nil
        }
        let vectorA = x.count == 1, vectorB = y.count == 1
        if vectorA { x.insert(.value(1), at: 0) }
        if vectorB { y.append(.value(1)) }
        let k1 = x[x.count - 1], k2 = y[y.count - 2]
        guard Dim.merge(k1, k2) != nil else {
            c.fail("inner dimensions \(k1) and \(k2) differ")
            return nil
        }
        guard var out = Shapes.broadcast([Array(x.dropLast(2)), Array(y.dropLast(2))]) else {
            c.fail("batch dimensions \(x.dropLast(2)) and \(y.dropLast(2)) do not broadcast")
            return nil
        }
        if !vectorA { out.append(x[x.count - 2]) }
        if !vectorB { out.append(y[y.count - 1]) }
        return out
    }

    /// Gemm: A [M, K] (or [K, M] with transA), B [K, N] (or [N, K]) -> [M, N].
    static func gemm(_ c: inout ShapeRuleContext) {
        c.set(0, dtype: c.dtype(0) ?? c.dtype(1), shape: nil)
        guard let a = c.shape(0), let b = c.shape(1) else { return }
        guard a.count == 2, b.count == 2 else {
            c.fail("Gemm needs 2-D A and B, got ranks \(a.count) and \(b.count)")
            return
        }
        let transA = c.int("transA", default: 0) != 0, transB = c.int("transB", default: 0) != 0
        let (m, ka) = transA ? (a[1], a[0]) : (a[0], a[1])
        let (kb, n) = transB ? (b[1], b[0]) : (b[0], b[1])
        guard Dim.merge(ka, kb) != nil else {
            c.fail("inner dimensions \(ka) and \(kb) differ")
            return
        }
        c.set(0, dtype: c.dtype(0) ?? c.dtype(1), shape: [m, n])
    }

    /// Einsum with an explicit or implicit output; an ellipsis covers the leading dims, broadcast.
    static func einsum(_ c: inout ShapeRuleContext) {
        c.set(0, dtype: c.dtype(0), shape: nil)
        guard let equation = c.string("equation") else { return }
        let text = equation.filter { $0 != " " }
        let sides = text.split(separator: "->", omittingEmptySubsequences: false).map(String.init)
        let terms = sides[0].split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        guard sides.count <= 2, terms.count == c.inputCount else {
            c.fail("equation '\(equation)' does not match \(c.inputCount) inputs")
            return
        }
        var sizes: [Character: Dim] = [:]
        var counts: [Character: Int] = [:]
        var ellipsis: [[Dim]] = []
        for (i, term) in terms.enumerated() {
            guard let shape = c.shape(i) else { return }
            let hasEllipsis = term.contains("...")
            let letters = Array(term.replacing("...", with: ""))
            let extra = shape.count - letters.count
            guard hasEllipsis ? extra >= 0 : extra == 0 else {
                c.fail("term '\(term)' does not match rank \(shape.count)")
                return
            }
            let startOfEllipsis = term.firstRange(of: "...").map { term.distance(from: term.startIndex, to: $0.lowerBound) } ?? letters.count
            if hasEllipsis { ellipsis.append(Array(shape[startOfEllipsis..<(startOfEllipsis + extra)])) }
            for (j, letter) in letters.enumerated() {
                guard letter.isLetter else {
                    c.fail("equation '\(equation)' has '\(letter)'")
                    return
                }
                let dim = shape[j < startOfEllipsis ? j : j + extra]
                counts[letter, default: 0] += 1
                if let known = sizes[letter] {
                    guard let b = Dim.broadcast([known, dim]) else {
                        c.fail("'\(letter)' has sizes \(known) and \(dim)")
                        return
                    }
                    sizes[letter] = b
                } else {
                    sizes[letter] = dim
                }
            }
        }
        guard let batch = Shapes.broadcast(ellipsis) else {
            c.fail("the ellipsis dims do not broadcast")
            return
        }
        let output: String
        if sides.count == 2 {
            output = sides[1]
        } else {
            output = (ellipsis.isEmpty ? "" : "...") + String(counts.filter { $0.value == 1 }.keys.sorted())
        }
        var shape: [Dim] = []
        var rest = Substring(output)
        while let letter = rest.first {
            if rest.hasPrefix("...") {
                shape += batch
                rest = rest.dropFirst(3)
                continue
            }
            guard let d = sizes[letter] else {
                c.fail("output letter '\(letter)' is not in the inputs")
                return
            }
            shape.append(d)
            rest = rest.dropFirst()
        }
        c.set(0, dtype: c.dtype(0), shape: shape)
    }
}
