/// What `prune(_:options:)` removes.
public enum PruneMethod: Equatable, Sendable {
    /// Zero the smallest-magnitude weights (shapes unchanged).
    case magnitude
    /// In every group of `m` consecutive weights along the reduction dimension, keep the `n`
    /// of largest magnitude (shapes unchanged).
    case nOfM(n: Int, m: Int)
    /// Remove whole Conv filters / Gemm-MatMul output units and rewrite their consumers, so
    /// the saved model is physically smaller.
    case channel
}

/// How magnitude pruning spreads the target sparsity.
public enum PruneScope: String, Sendable {
    /// Every tensor pruned to the target.
    case layer
    /// One magnitude threshold across all tensors; each tensor capped at `maxTensorSparsity`.
    case global
}

/// How structured pruning ranks channels (least important removed first).
public enum ChannelCriterion: String, Sendable {
    case l1, l2
    /// |gamma| of the BatchNormalization that follows the Conv (L1 where there is none).
    case batchNormGamma = "bn_gamma"
}

/// Options of `prune(_:options:)`. Defaults match the Python and CLI defaults.
public struct PruneOptions: Sendable {
    public var method: PruneMethod = .magnitude
    /// Fraction of weights (magnitude) or of channels (channel) to remove, in [0, 1).
    /// Ignored by N:M, whose sparsity is 1 - n/m.
    public var sparsity: Double = 0.5
    public var scope: PruneScope = .layer
    /// Upper bound per tensor in global scope, in [0, 1].
    public var maxTensorSparsity: Double = 0.99
    /// Weights, node names or op types to leave alone.
    public var exclude: NameFilter = NameFilter()
    /// Weights with fewer elements are left alone.
    public var minElements: Int = 0
    /// Explicit sparsity per weight name; overrides `sparsity` and `scope` for those weights.
    public var perTensor: [String: Double] = [:]
    public var channelCriterion: ChannelCriterion = .l1
    /// Channel pruning keeps a multiple of this many channels in every group of more than
    /// this many (the kept count rounded to the nearest multiple, at least one multiple, at
    /// most all): vectorized kernels such as ONNX Runtime's blocked NCHWc convolutions (blocks
    /// of 8 or 16 channels) stay on their fast path. 1 (or 0): kept counts are not rounded.
    public var channelMultiple: Int = 1
    /// Mark weights whose COO form (int64 indices + values) is smaller than dense to be saved
    /// in the graph's sparse_initializer list.
    public var storeSparse: Bool = false

    public init() {}
}
