import KerfCore

/// ONNX Attention: Y, present_key, present_value, qk_matmul_output.
extension ShapeRules {
    static let attention: [String: ShapeRule] = ["Attention": attentionShapes]

    /// Q [b, hq, s, dk] (or 3-D [b, s, hq·dk]), K [b, hkv, t, dk], V [b, hkv, t, dv], past_key
    /// [b, hkv, p, dk]: Y [b, hq, s, dv] (3-D: [b, s, hq·dv]), present_key [b, hkv, p + t, dk],
    /// present_value [b, hkv, p + t, dv], qk_matmul_output [b, hq, s, p + t]. All in Q's dtype.
    static func attentionShapes(_ c: inout ShapeRuleContext) {
        let dtype = c.dtype(0)
        for i in 0..<c.node.outputs.count { c.set(i, dtype: dtype, shape: nil) }
        guard let q = c.shape(0), let k = c.shape(1), let v = c.shape(2), q.count == k.count, q.count == v.count else { return }
        let qHeads: Dim, kvHeads: Dim, s: Dim, t: Dim, dk: Dim, dv: Dim
        if q.count == 4 {
            (qHeads, kvHeads, s, t, dk, dv) = (q[1], k[1], q[2], k[2], k[3], v[3])
            c.set(0, dtype: dtype, shape: [q[0], qHeads, s, dv])
        } else if q.count == 3, let hq = c.int("q_num_heads"), let hkv = c.int("kv_num_heads"), hq > 0, hkv > 0 {
            let perHead = { (d: Dim) -> Dim in d.intValue.map { $0 % hkv == 0 ? .value($0 / hkv) : .unknown } ?? .unknown }
            (qHeads, kvHeads, s, t, dk, dv) = (.value(hq), .value(hkv), q[1], k[1], perHead(k[2]), perHead(v[2]))
            c.set(0, dtype: dtype, shape: [q[0], s, v[2].intValue.map { $0 % hkv == 0 ? .value(hq * ($0 / hkv)) : .unknown } ?? .unknown])
        } else {
            return
        }
        let past: Dim = c.has(4) ? (c.shape(4).flatMap { $0.count == 4 ? $0[2] : nil } ?? .unknown) : .value(0)
        let total = Dim.sum(past, t)
        c.set(1, dtype: dtype, shape: [q[0], kvHeads, total, dk])
        c.set(2, dtype: dtype, shape: [q[0], kvHeads, total, dv])
        c.set(3, dtype: dtype, shape: [q[0], qHeads, s, total])
    }
}
