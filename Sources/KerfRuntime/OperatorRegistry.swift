import KerfCore

/// Maps ONNX op types (default domain) to operator factories: one `register` per op family.
public enum OperatorRegistry {
    static let factories: [String: OperatorFactory] = {
        var r: [String: OperatorFactory] = [:]
        ElementwiseOps.register(&r)
        ActivationOps.register(&r)
        SiLUOps.register(&r)
        MatMulOps.register(&r)
        ConvOps.register(&r)
        ConvTransposeOps.register(&r)
        RecurrentOps.register(&r)
        PoolOps.register(&r)
        ChannelsLastOps.register(&r)
        NormalizationOps.register(&r)
        ShapeOps.register(&r)
        ConstantOps.register(&r)
        CastOps.register(&r)
        UnaryMathOps.register(&r)
        ComparisonOps.register(&r)
        ReduceOps.register(&r)
        LayerNormOps.register(&r)
        ActivationExtraOps.register(&r)
        SliceOps.register(&r)
        ExpandTileOps.register(&r)
        PadOps.register(&r)
        RangeOps.register(&r)
        TopKOps.register(&r)
        EinsumOps.register(&r)
        ResizeOps.register(&r)
        QuantizeOps.register(&r)
        IntegerMatMulOps.register(&r)
        IntegerConvOps.register(&r)
        FusedQuantizedOps.register(&r)
        AttentionOps.register(&r)
        DotProductAttentionOps.register(&r)
        RotaryEmbeddingOps.register(&r)
        RMSNormOps.register(&r)
        ElementIndexingOps.register(&r)
        NDIndexingOps.register(&r)
        CumSumOps.register(&r)
        TriluOps.register(&r)
        ModOps.register(&r)
        FloatClassOps.register(&r)
        NonZeroOps.register(&r)
        OneHotOps.register(&r)
        TrainingOps.register(&r)
        AxisNormalizationOps.register(&r)
        BitwiseOps.register(&r)
        ClassificationLossOps.register(&r)
        ControlFlowOps.register(&r)
        return r
    }()

    /// Op types Kerf can run, sorted.
    public static var supportedOps: [String] { factories.keys.sorted() }

    static func makeOperator(_ context: OperatorContext) throws -> Operator {
        let node = context.node
        let key = node.isDefaultDomain ? node.opType : "\(node.domain):\(node.opType)"
        guard let factory = factories[key] else {
            let qualified = node.isDefaultDomain ? node.opType : "\(node.domain).\(node.opType)"
            throw KerfError.unsupported("operator '\(qualified)' is not supported")
        }
        return try factory(context)
    }
}
