import KerfCore

/// RNN, GRU, LSTM: Y, Y_h (and LSTM's Y_c), all in X's dtype.
extension ShapeRules {
    static let recurrent: [String: ShapeRule] = each(["RNN", "GRU", "LSTM"], recurrentShapes)

    /// X [steps, batch, input] (layout 1: [batch, steps, input]), D = 2 for `bidirectional`
    /// else 1, H from `hidden_size` or R [D, G·H, H]: Y [steps, D, batch, H] (layout 1:
    /// [batch, steps, D, H]), Y_h and Y_c [D, batch, H] (layout 1: [batch, D, H]).
    static func recurrentShapes(_ c: inout ShapeRuleContext) {
        let dtype = c.dtype(0)
        for i in 0..<c.node.outputs.count { c.set(i, dtype: dtype, shape: nil) }
        guard let xs = c.shape(0), xs.count == 3 else { return }
        let d: Dim = .value(c.string("direction") == "bidirectional" ? 2 : 1)
        let attribute = c.int("hidden_size").flatMap { $0 > 0 ? Dim.value($0) : nil }
        let hidden = attribute ?? c.shape(2).flatMap { $0.count == 3 ? $0[2] : nil } ?? .unknown
        let batchFirst = c.int("layout", default: 0) == 1
        let (steps, batch) = batchFirst ? (xs[1], xs[0]) : (xs[0], xs[1])
        c.set(0, dtype: dtype, shape: batchFirst ? [batch, steps, d, hidden] : [steps, d, batch, hidden])
        for i in 1..<3 { c.set(i, dtype: dtype, shape: batchFirst ? [batch, d, hidden] : [d, batch, hidden]) }
    }
}
