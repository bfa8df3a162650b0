import KerfCore

/// The gradient rule of each differentiable op type: one `register` per family. Default-domain
/// ops are keyed by op type, others (the training-mode forward ops of `kerf.training`) by
/// "domain:op type".
public enum GradientRules {
    static let rules: [String: GradientRule] = {
        var r: [String: GradientRule] = [:]
        ElementwiseGradients.register(&r)
        ActivationGradients.register(&r)
        LinearGradients.register(&r)
        LayoutGradients.register(&r)
        ReductionGradients.register(&r)
        NormalizationGradients.register(&r)
        ConvolutionGradients.register(&r)
        PoolingGradients.register(&r)
        BatchNormalizationGradients.register(&r)
        DropoutGradients.register(&r)
        TileAndPadGradients.register(&r)
        FakeQuantizeGradients.register(&r)
        return r
    }()

    /// The rule for `node`'s op, if Kerf can differentiate it.
    static func rule(for node: Node) -> GradientRule? {
        rules[node.isDefaultDomain ? node.opType : "\(node.domain):\(node.opType)"]
    }

    /// Op types Kerf can differentiate, sorted.
    public static var supportedOps: [String] { rules.keys.sorted() }
}
