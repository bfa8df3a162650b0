import KerfCore

/// Operators that broadcast their inputs (numpy rules): arithmetic, comparisons, logic, Where.
/// Known integer contents are combined element by element (shape arithmetic such as
/// `Div(Gather(Shape(x), 2), heads)`).
extension ShapeRules {
    static let broadcasting: [String: ShapeRule] = {
        var t: [String: ShapeRule] = [:]
        for op in ["Add", "Sub", "Mul", "Div", "Mod", "Max", "Min"] {
            t[op] = { c in broadcast(&c, dtype: c.dtype(0) ?? c.dtype(1), combine: arithmetic(op)) }
        }
        t.merge(each(["Pow", "Sum", "Mean", "BitShift", "BitwiseAnd", "BitwiseOr", "BitwiseXor"]) { c in
            broadcast(&c, dtype: c.dtype(0), combine: nil)
        }) { a, _ in a }
        t.merge(each(["Less", "Greater", "LessOrEqual", "GreaterOrEqual", "And", "Or", "Xor"]) { c in
            broadcast(&c, dtype: .bool, combine: nil)
        }) { a, _ in a }
        t["Equal"] = { c in broadcast(&c, dtype: .bool, combine: equal) }
        t["Where"] = whereRule
        return t
    }()

    /// Output 0 is the broadcast of every present input, of `dtype`; `combine` (when given)
    /// computes known contents from two known inputs.
    static func broadcast(_ c: inout ShapeRuleContext, dtype: DType?, combine: ((Dim, Dim) -> Dim)?) {
        let present = (0..<c.inputCount).filter { c.has($0) }
        let shapes = present.map { c.shape($0) }
        guard !present.isEmpty, shapes.allSatisfy({ $0 != nil }) else {
            c.set(0, dtype: dtype, shape: nil)
            return
        }
        guard let shape = Shapes.broadcast(shapes.map { $0! }) else {
            c.fail("shapes \(shapes.map { $0! }) do not broadcast")
            c.set(0, dtype: dtype, shape: nil)
            return
        }
        c.set(0, dtype: dtype, shape: shape)
        if let combine, present.count == 2, let a = c.value(present[0]), let b = c.value(present[1]) {
            c.setValue(0, elementwise(a, b, combine))
        }
    }

    /// Where(condition, x, y): the broadcast of all three, of x's dtype.
    static func whereRule(_ c: inout ShapeRuleContext) {
        broadcast(&c, dtype: c.dtype(1) ?? c.dtype(2), combine: nil)
        guard let cond = c.value(0), let x = c.value(1), let y = c.value(2),
              let shape = c.outputs.first?.shape.flatMap(Shapes.count), shape <= KnownValue.maxElements,
              let dims = c.outputs.first?.shape?.compactMap(\.intValue) else { return }
        var out: [Dim] = []
        for i in 0..<shape {
            guard let k = element(cond, at: i, of: dims), let a = element(x, at: i, of: dims),
                  let b = element(y, at: i, of: dims) else { return }
            switch k {
            case .value(0): out.append(b)
            case .value: out.append(a)
            default: out.append(.unknown)
            }
        }
        c.setValue(0, KnownValue(shape: dims, elements: out))
    }

    /// Two known tensors combined with broadcasting; nil when the result would be too large.
    static func elementwise(_ a: KnownValue, _ b: KnownValue, _ f: (Dim, Dim) -> Dim) -> KnownValue? {
        guard let shape = Shapes.broadcast([a.shape.map(Dim.value), b.shape.map(Dim.value)]),
              let dims = Optional(shape.compactMap(\.intValue)), dims.count == shape.count,
              let n = Shapes.count(shape), n <= KnownValue.maxElements else { return nil }
        var out: [Dim] = []
        out.reserveCapacity(n)
        for i in 0..<n {
            guard let x = element(a, at: i, of: dims), let y = element(b, at: i, of: dims) else { return nil }
            out.append(f(x, y))
        }
        return KnownValue(shape: dims, elements: out)
    }

    /// The element of `v` that broadcasts to flat position `flat` of an output of shape `dims`.
    static func element(_ v: KnownValue, at flat: Int, of dims: [Int]) -> Dim? {
        guard v.shape.count <= dims.count else { return nil }
        var rest = flat, index = 0, step = 1
        for axis in stride(from: dims.count - 1, through: 0, by: -1) {
            let coordinate = dims[axis] == 0 ? 0 : rest % dims[axis]
            rest = dims[axis] == 0 ? 0 : rest / dims[axis]
            let j = axis - (dims.count - v.shape.count)
            guard j >= 0 else { continue }
            let size = v.shape[j]
            if size != 1 { index += coordinate * step }
            step *= size
        }
        return index < v.elements.count ? v.elements[index] : nil
    }

    /// Integer arithmetic on dims for `op`: numbers compute (overflow, division by zero:
    /// unknown), identities keep symbols (x*1, x+0, x-0, x/1).
    static func arithmetic(_ op: String) -> (Dim, Dim) -> Dim {
        { a, b in
            if case .value(let x) = a, case .value(let y) = b {
                let r: (Int, Bool)
                switch op {
                case "Add": r = x.addingReportingOverflow(y)
                case "Sub": r = x.subtractingReportingOverflow(y)
                case "Mul": r = x.multipliedReportingOverflow(by: y)
                case "Div": r = y == 0 ? (0, true) : x.dividedReportingOverflow(by: y)
                case "Mod":
                    guard y != 0 else { return .unknown }
                    let m = x.remainderReportingOverflow(dividingBy: y)
                    guard !m.overflow else { return .unknown }
                    r = (m.partialValue != 0 && (m.partialValue < 0) != (y < 0) ? m.partialValue + y : m.partialValue, false)
                case "Max": r = (max(x, y), false)
                case "Min": r = (min(x, y), false)
                default: return .unknown
                }
                return r.1 ? .unknown : .value(r.0)
            }
            switch (op, a, b) {
            case ("Mul", _, .value(1)), ("Div", _, .value(1)), ("Add", _, .value(0)), ("Sub", _, .value(0)): return a
            case ("Mul", .value(1), _), ("Add", .value(0), _): return b
            case ("Max", _, _) where a == b, ("Min", _, _) where a == b: return a
            default: return .unknown
            }
        }
    }

    /// Equal on dims as 1/0: symbols are non-negative sizes, so a symbol never equals a
    /// negative number.
    static func equal(_ a: Dim, _ b: Dim) -> Dim {
        switch (a, b) {
        case (.value(let x), .value(let y)): return .value(x == y ? 1 : 0)
        case (.symbol(let s), .symbol(let t)) where s == t: return .value(1)
        case (.symbol, .value(let y)) where y < 0, (.value(let y), .symbol) where y < 0: return .value(0)
        default: return .unknown
        }
    }
}
