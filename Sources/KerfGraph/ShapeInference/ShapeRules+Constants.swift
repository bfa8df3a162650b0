import KerfCore

/// Operators whose outputs are shapes or constants: Shape, Size, Constant, ConstantOfShape,
/// Range, EyeLike. Their integer contents are recorded for the shape computations that follow.
extension ShapeRules {
    static let constants: [String: ShapeRule] = [
        "Shape": shape,
        "Size": { c in
            c.set(0, dtype: .int64, shape: [])
            if let s = c.shape(0) { c.setValue(0, KnownValue(scalar: Dim.product(of: s))) }
        },
        "Constant": constant,
        "ConstantOfShape": constantOfShape,
        "Range": range,
        "EyeLike": { c in c.set(0, dtype: c.dtypeAttribute("dtype") ?? c.dtype(0), shape: c.shape(0)) },
    ]

    /// Shape: int64 [rank] (or the `start`..<`end` part, opset 15), its elements the input's dims.
    static func shape(_ c: inout ShapeRuleContext) {
        c.set(0, dtype: .int64, shape: [.unknown])
        guard let s = c.shape(0) else { return }
        let r = s.count
        let start = clamp(c.int("start", default: 0), r, 0, r)
        let end = c.int("end").map { clamp($0, r, 0, r) } ?? r
        let dims = start < end ? Array(s[start..<end]) : []
        c.set(0, dtype: .int64, shape: [.value(dims.count)])
        c.setValue(0, KnownValue(vector: dims))
    }

    /// Constant: the type of whichever `value*` attribute it holds.
    static func constant(_ c: inout ShapeRuleContext) {
        switch c.node.attributes.first?.value {
        case .tensor(let t)?:
            c.set(0, dtype: t.dtype, shape: t.shape.map(Dim.value))
            c.setValue(0, KnownValue(tensor: t))
        case .int(let v)?:
            c.set(0, dtype: .int64, shape: [])
            c.setValue(0, KnownValue(scalar: .value(Int(v))))
        case .ints(let v)?:
            c.set(0, dtype: .int64, shape: [.value(v.count)])
            if v.count <= KnownValue.maxElements { c.setValue(0, KnownValue(vector: v.map { .value(Int($0)) })) }
        case .float?:
            c.set(0, dtype: .float, shape: [])
        case .floats(let v)?:
            c.set(0, dtype: .float, shape: [.value(v.count)])
        case .string?:
            c.set(0, dtype: .string, shape: [])
        case .strings(let v)?:
            c.set(0, dtype: .string, shape: [.value(v.count)])
        default:
            c.fail("no value attribute")
        }
    }

    /// ConstantOfShape: the shape input's contents as shape, the `value` tensor's dtype (float
    /// by default), filled with its element.
    static func constantOfShape(_ c: inout ShapeRuleContext) {
        let fill = c.tensor("value")
        let dtype = fill?.dtype ?? .float
        c.set(0, dtype: dtype, shape: nil)
        guard let v = c.value(0) else {
            if let s = c.shape(0), s.count == 1, let n = s[0].intValue, n < 1 << 16 {
                c.set(0, dtype: dtype, shape: Array(repeating: .unknown, count: n))
            }
            return
        }
        guard v.shape.count == 1 else {
            c.fail("shape input of rank \(v.shape.count)")
            return
        }
        if v.elements.contains(where: { if case .value(let x) = $0 { return x < 0 } else { return false } }) {
            c.fail("negative dims \(v.elements)")
            return
        }
        c.set(0, dtype: dtype, shape: v.elements)
        if let fill, let x = KnownValue(tensor: fill)?.elements.first, let dims = Optional(v.elements.compactMap(\.intValue)),
           dims.count == v.elements.count, let n = Shapes.count(v.elements), n <= KnownValue.maxElements {
            c.setValue(0, KnownValue(shape: dims, elements: Array(repeating: x, count: n)))
        }
    }

    /// Range(start, limit, delta): 1-D of max(ceil((limit - start) / delta), 0) elements.
    static func range(_ c: inout ShapeRuleContext) {
        c.set(0, dtype: c.dtype(0), shape: [.unknown])
        if let s = c.integers(0), let l = c.integers(1), let d = c.integers(2), s.count == 1, l.count == 1, d.count == 1 {
            let (start, limit, delta) = (s[0], l[0], d[0])
            guard delta != 0 else {
                c.fail("delta 0")
                return
            }
            let (span, o) = limit.subtractingReportingOverflow(start)
            guard !o else { return }
            let n = span == 0 || (span > 0) != (delta > 0) ? 0
                : delta > 0 ? (span - 1) / delta + 1 : (span + 1) / delta + 1
            c.set(0, dtype: c.dtype(0), shape: [.value(n)])
            if n <= KnownValue.maxElements {
                c.setValue(0, KnownValue(vector: (0..<n).map { .value(start &+ $0 &* delta) }))
            }
        } else if let s = c.doubles(0), let l = c.doubles(1), let d = c.doubles(2), s.count == 1, l.count == 1, d.count == 1,
                  d[0] != 0 {
            let n = ((l[0] - s[0]) / d[0]).rounded(.up)
            if n.isFinite { c.set(0, dtype: c.dtype(0), shape: [.value(n > 0 ? (n < 1e15 ? Int(n) : -1) : 0)]) }
            if case .value(-1)? = c.outputs.first?.shape?.first { c.set(0, dtype: c.dtype(0), shape: [.unknown]) }
        }
    }
}
