import KerfCore

/// The gradient rule of each differentiable op type (default domain): one `register` per family.
public enum GradientRules {
    static let rules: [String: GradientRule] = {
        var r: [String: GradientRule] = [:]
        ElementwiseGradients.register(&r)
        ActivationGradients.register(&r)
        LinearGradients.register(&r)
        LayoutGradients.register(&r)
        ReductionGradients.register(&r)
        NormalizationGradients.register(&r)
        return r
    }()

    /// Op types Kerf can differentiate, sorted.
    public static var supportedOps: [String] { rules.keys.sorted() }
}
