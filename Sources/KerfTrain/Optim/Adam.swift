import KerfCore

/// Options of Adam and AdamW, as torch.optim.Adam / AdamW (single-tensor, non-capturable path).
/// One step of a parameter p with gradient g; tensors are float32, the scalars (bias
/// corrections, step size) float64 as Python computes them, each cast to float32 where it
/// meets a tensor:
///
///     step += 1
///     g = -g                                   if maximize
///     p = p * (1 - lr * weightDecay)           if decoupledWeightDecay (AdamW)
///     g = g + weightDecay * p                  otherwise (when weightDecay != 0)
///     m = lerp(m, g, 1 - beta1)
///     v = beta2 * v + (1 - beta2) * g * g
///     vmax = max(vmax, v); v' = vmax           if amsgrad, else v' = v
///     denom = sqrt(v') / sqrt(1 - beta2^step) + eps
///     p = p - (lr / (1 - beta1^step)) * m / denom
public struct Adam: Equatable, Sendable {
    /// Learning rate, >= 0: the default of every parameter group.
    public var lr: Double
    /// Decay of the first moment, in [0, 1).
    public var beta1: Double
    /// Decay of the second moment, in [0, 1).
    public var beta2: Double
    /// Added to the denominator, >= 0.
    public var eps: Double
    /// >= 0: the default of every parameter group. L2 penalty added to the gradient, or with
    /// `decoupledWeightDecay` the fraction lr * weightDecay of the parameter removed each step.
    public var weightDecay: Double
    /// Normalize by the running maximum of the second moment (AMSGrad).
    public var amsgrad: Bool
    /// AdamW: decay the parameter directly instead of adding to the gradient.
    public var decoupledWeightDecay: Bool
    /// Ascend the gradient instead of descending it.
    public var maximize: Bool

    public init(lr: Double = 1e-3, beta1: Double = 0.9, beta2: Double = 0.999, eps: Double = 1e-8,
                weightDecay: Double = 0, amsgrad: Bool = false, decoupledWeightDecay: Bool = false,
                maximize: Bool = false) {
        self.lr = lr
        self.beta1 = beta1
        self.beta2 = beta2
        self.eps = eps
        self.weightDecay = weightDecay
        self.amsgrad = amsgrad
        self.decoupledWeightDecay = decoupledWeightDecay
        self.maximize = maximize
    }

    /// AdamW: Adam with decoupled weight decay and torch.optim.AdamW's defaults.
    public static func adamW(lr: Double = 1e-3, beta1: Double = 0.9, beta2: Double = 0.999, eps: Double = 1e-8,
                             weightDecay: Double = 1e-2, amsgrad: Bool = false, maximize: Bool = false) -> Adam {
        Adam(lr: lr, beta1: beta1, beta2: beta2, eps: eps, weightDecay: weightDecay, amsgrad: amsgrad,
             decoupledWeightDecay: true, maximize: maximize)
    }

    /// Throws `.invalidArgument` for the options torch's constructor refuses, and for
    /// non-finite values.
    public func validate() throws {
        try requireNonNegative(lr, "Adam learning rate")
        try requireNonNegative(eps, "Adam epsilon")
        try requireUnitInterval(beta1, "Adam beta1")
        try requireUnitInterval(beta2, "Adam beta2")
        try requireNonNegative(weightDecay, "Adam weight decay")
    }
}
