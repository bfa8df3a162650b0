import KerfCore

/// Normalizations and softmax: output 0 keeps the input's shape.
extension ShapeRules {
    static let normalization: [String: ShapeRule] = {
        var t = each(["InstanceNormalization", "GroupNormalization", "LpNormalization", "MeanVarianceNormalization",
                      "Softmax", "LogSoftmax", "Hardmax", "RMSNormalization"], sameAsInput)
        t["BatchNormalization"] = batchNormalization
        t["LayerNormalization"] = layerNormalization
        return t
    }()

    /// Y like X; in training mode the running mean and variance outputs are [C].
    static func batchNormalization(_ c: inout ShapeRuleContext) {
        c.set(0, c.fact(0))
        let channels: [Dim]? = c.shape(0).map { $0.count >= 2 ? [$0[1]] : [.unknown] } ?? c.shape(1)
        for i in 1..<max(1, c.node.outputs.count) { c.set(i, dtype: c.dtype(1) ?? c.dtype(0), shape: channels) }
    }

    /// Y like X; Mean and InvStdDev keep the dims before `axis` and have 1 from it on.
    static func layerNormalization(_ c: inout ShapeRuleContext) {
        c.set(0, c.fact(0))
        guard c.node.outputs.count > 1 else { return }
        let stash = c.dtypeAttribute("stash_type") ?? .float
        guard let xs = c.shape(0), let axis = c.axis(c.int("axis", default: -1), rank: xs.count) else {
            c.set(1, dtype: stash, shape: nil)
            c.set(2, dtype: stash, shape: nil)
            return
        }
        let reduced = Array(xs.prefix(axis)) + Array(repeating: .value(1), count: xs.count - axis)
        c.set(1, dtype: stash, shape: reduced)
        c.set(2, dtype: stash, shape: reduced)
    }
}
