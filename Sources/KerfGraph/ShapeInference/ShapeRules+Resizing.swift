import KerfCore

/// Resize (opset 10: X, scales; 11+: X, roi, scales, sizes) and Upsample: each dim from
/// `sizes`, or floor(dim * scale).
extension ShapeRules {
    static let resizing: [String: ShapeRule] = [
        "Resize": { c in
            let scalesInput = c.opset == 10 || c.inputCount == 2 ? 1 : 2
            resize(&c, scales: scalesInput, sizes: c.opset == 10 ? nil : 3)
        },
        "Upsample": { c in resize(&c, scales: 1, sizes: nil) },
    ]

    static func resize(_ c: inout ShapeRuleContext, scales: Int, sizes: Int?) {
        c.set(0, dtype: c.dtype(0), shape: nil)
        guard let xs = c.shape(0) else { return }
        guard c.ints("axes") == nil else {
            c.set(0, dtype: c.dtype(0), shape: Array(repeating: .unknown, count: xs.count))
            return
        }
        if let sizes, c.has(sizes) {
            guard let v = c.value(sizes), v.elements.count == xs.count else {
                c.set(0, dtype: c.dtype(0), shape: Array(repeating: .unknown, count: xs.count))
                return
            }
            c.set(0, dtype: c.dtype(0), shape: v.elements)
            return
        }
        let factors = c.has(scales) ? c.doubles(scales) : c.floats("scales").map { $0.map(Double.init) }
        guard let factors, factors.count == xs.count else {
            c.set(0, dtype: c.dtype(0), shape: Array(repeating: .unknown, count: xs.count))
            return
        }
        let out = zip(xs, factors).map { d, f -> Dim in
            if f == 1 { return d }
            guard let n = d.intValue, f > 0, f.isFinite else { return .unknown }
            let size = (Double(n) * f).rounded(.down)
            return size < 1e15 ? .value(Int(size)) : .unknown
        }
        c.set(0, dtype: c.dtype(0), shape: out)
    }
}
