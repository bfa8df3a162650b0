import KerfCore

/// Operators that rearrange dims without changing elements: Reshape, Flatten, Transpose,
/// Squeeze, Unsqueeze, DepthToSpace, SpaceToDepth. Known contents move with them.
extension ShapeRules {
    static let layout: [String: ShapeRule] = [
        "Reshape": reshape,
        "Flatten": flatten,
        "Transpose": transpose,
        "Squeeze": squeeze,
        "Unsqueeze": unsqueeze,
        "DepthToSpace": { c in spaceDepth(&c, toDepth: false) },
        "SpaceToDepth": { c in spaceDepth(&c, toDepth: true) },
    ]

    /// Output 0's contents: input 0's elements under the output's shape, when it is static.
    static func carryValue(_ c: inout ShapeRuleContext) {
        guard let v = c.value(0), let s = c.outputs.first?.shape else { return }
        let dims = s.compactMap(\.intValue)
        guard dims.count == s.count else { return }
        c.setValue(0, KnownValue(shape: dims, elements: v.elements))
    }

    /// Reshape to the shape tensor (input 1, or attribute `shape` before opset 5): 0 copies the
    /// input dim (unless `allowzero`), one -1 takes what is left of the element count.
    static func reshape(_ c: inout ShapeRuleContext) {
        c.set(0, dtype: c.dtype(0), shape: nil)
        let target: [Dim]
        if c.has(1) {
            guard let v = c.value(1) else {
                if let s = c.shape(1), s.count == 1, let n = s[0].intValue {
                    c.set(0, dtype: c.dtype(0), shape: Array(repeating: .unknown, count: n))
                }
                return
            }
            guard v.shape.count == 1 else {
                c.fail("shape input of rank \(v.shape.count)")
                return
            }
            target = v.elements
        } else if let a = c.ints("shape") {
            target = a.map(Dim.value)
        } else {
            return
        }
        let input = c.shape(0)
        let allowZero = c.int("allowzero", default: 0) != 0
        var out: [Dim] = []
        var inferIndex: Int?
        for (i, d) in target.enumerated() {
            switch d {
            case .value(0) where !allowZero:
                guard let input else {
                    out.append(.unknown)
                    continue
                }
                guard i < input.count else {
                    c.fail("0 at position \(i) copies a dim a rank-\(input.count) input lacks")
                    return
                }
                out.append(input[i])
            case .value(-1):
                guard inferIndex == nil else {
                    c.fail("more than one -1 in \(target)")
                    return
                }
                inferIndex = i
                out.append(.unknown)
            case .value(let v) where v < -1:
                c.fail("dim \(v) in \(target)")
                return
            default:
                out.append(d)
            }
        }
        if let k = inferIndex, let input {
            var others = out
            others.remove(at: k)
            out[k] = quotient(input, others)
            if case .value(-1) = out[k] {
                c.fail("\(input) cannot be reshaped to \(target)")
                return
            }
        }
        if let input, inferIndex == nil, let a = Shapes.count(input), let b = Shapes.count(out), a != b {
            c.fail("\(input) has \(a) elements, \(target) has \(b)")
            return
        }
        c.set(0, dtype: c.dtype(0), shape: out)
        carryValue(&c)
    }

    /// product(total) / product(part) on dims: numbers divide, symbols cancel; `.unknown` when
    /// it cannot be told, `.value(-1)` when the numbers do not divide.
    static func quotient(_ total: [Dim], _ part: [Dim]) -> Dim {
        var symbols: [String] = []
        var number = 1
        for d in total {
            switch d {
            case .value(let v) where v >= 0:
                let (p, o) = number.multipliedReportingOverflow(by: v)
                guard !o else { return .unknown }
                number = p
            case .symbol(let s): symbols.append(s)
            default: return .unknown
            }
        }
        var divisor = 1
        for d in part {
            switch d {
            case .value(let v) where v >= 0:
                let (p, o) = divisor.multipliedReportingOverflow(by: v)
                guard !o else { return .unknown }
                divisor = p
            case .symbol(let s):
                guard let j = symbols.firstIndex(of: s) else { return .unknown }
                symbols.remove(at: j)
            default: return .unknown
            }
        }
        guard divisor != 0 else { return number == 0 ? .unknown : .value(-1) }
        guard number % divisor == 0 else { return .value(-1) }
        let q = number / divisor
        if symbols.isEmpty { return .value(q) }
        if symbols.count == 1, q == 1 { return .symbol(symbols[0]) }
        return .unknown
    }

    /// Flatten at `axis` (negative from opset 11): [prod(dims[..<axis]), prod(dims[axis...])].
    static func flatten(_ c: inout ShapeRuleContext) {
        c.set(0, dtype: c.dtype(0), shape: nil)
        guard let xs = c.shape(0) else { return }
        let a = c.int("axis", default: 1)
        let axis = a < 0 ? a + xs.count : a
        guard axis >= 0, axis <= xs.count else {
            c.fail("axis \(a) is outside a rank-\(xs.count) input")
            return
        }
        c.set(0, dtype: c.dtype(0), shape: [Dim.product(of: xs[..<axis]), Dim.product(of: xs[axis...])])
        carryValue(&c)
    }

    /// Transpose by `perm` (default: reversed dims).
    static func transpose(_ c: inout ShapeRuleContext) {
        c.set(0, dtype: c.dtype(0), shape: nil)
        guard let xs = c.shape(0) else { return }
        let perm = c.ints("perm") ?? Array((0..<xs.count).reversed())
        guard perm.count == xs.count, Set(perm) == Set(0..<xs.count) else {
            c.fail("perm \(perm) is not a permutation of \(xs.count) dims")
            return
        }
        c.set(0, dtype: c.dtype(0), shape: perm.map { xs[$0] })
        if let v = c.value(0), v.shape.count <= 1 { c.setValue(0, v) }
    }

    /// Axes of Squeeze/Unsqueeze: input 1 when present (opset 13), else the attribute.
    static func axesOperand(_ c: ShapeRuleContext) -> [Int]?? {
        if c.has(1) { return .some(c.integers(1)) }
        if let a = c.ints("axes") { return .some(a) }
        return .none
    }

    /// Squeeze the listed axes (which must be 1), or every dim known to be 1 when none are listed.
    static func squeeze(_ c: inout ShapeRuleContext) {
        c.set(0, dtype: c.dtype(0), shape: nil)
        guard let xs = c.shape(0) else { return }
        let listed = axesOperand(c)
        if case .some(nil) = listed { return }
        var out: [Dim] = []
        if case .some(let a?) = listed, !a.isEmpty {
            guard let axes = c.axes(a, rank: xs.count) else { return }
            for (i, d) in xs.enumerated() {
                if axes.contains(i) {
                    if let v = d.intValue, v != 1 {
                        c.fail("axis \(i) has size \(v), not 1")
                        return
                    }
                } else {
                    out.append(d)
                }
            }
        } else {
            guard xs.allSatisfy({ $0.intValue != nil }) else { return }
            out = xs.filter { $0.intValue != 1 }
        }
        c.set(0, dtype: c.dtype(0), shape: out)
        carryValue(&c)
    }

    /// Unsqueeze: dims of 1 inserted at the listed axes of the output.
    static func unsqueeze(_ c: inout ShapeRuleContext) {
        c.set(0, dtype: c.dtype(0), shape: nil)
        guard let xs = c.shape(0), case .some(let a?) = axesOperand(c) else { return }
        let (rank, o) = xs.count.addingReportingOverflow(a.count)
        guard !o, let axes = c.axes(a, rank: rank) else { return }
        var out: [Dim] = []
        var next = xs.makeIterator()
        for i in 0..<rank {
            if axes.contains(i) { out.append(.value(1)) } else if let d = next.next() { out.append(d) }
        }
        c.set(0, dtype: c.dtype(0), shape: out)
        carryValue(&c)
    }

    /// DepthToSpace / SpaceToDepth with `blocksize` b on [N, C, H, W].
    static func spaceDepth(_ c: inout ShapeRuleContext, toDepth: Bool) {
        c.set(0, dtype: c.dtype(0), shape: nil)
        let b = c.int("blocksize", default: 0)
        guard let xs = c.shape(0), xs.count == 4, b >= 1, b < 1 << 20 else {
            if c.shape(0) != nil { c.fail("needs a rank-4 input and blocksize >= 1") }
            return
        }
        let bb = Dim.value(b * b)
        func divide(_ d: Dim, _ by: Int) -> Dim {
            guard let v = d.intValue else { return .unknown }
            return v % by == 0 ? .value(v / by) : .unknown
        }
        if toDepth {
            c.set(0, dtype: c.dtype(0), shape: [xs[0], Dim.product(xs[1], bb), divide(xs[2], b), divide(xs[3], b)])
        } else {
            c.set(0, dtype: c.dtype(0), shape: [xs[0], divide(xs[1], b * b), Dim.product(xs[2], .value(b)), Dim.product(xs[3], .value(b))])
        }
    }
}
