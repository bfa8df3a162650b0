import KerfCore

/// Options of stochastic gradient descent, as torch.optim.SGD (single-tensor path). One step,
/// with g the gradient and p the parameter, all in float32:
///
///     g = -g                          if maximize
///     g = g + weightDecay * p         if weightDecay != 0
///     buf = g                         first step with momentum != 0 (no dampening)
///     buf = momentum * buf + (1 - dampening) * g     later steps
///     g = g + momentum * buf          if nesterov, else g = buf   (when momentum != 0)
///     p = p - lr * g
public struct SGD: Equatable, Sendable {
    /// Learning rate, >= 0: the default of every parameter group.
    public var lr: Double
    /// Momentum factor, >= 0; 0 keeps no momentum buffer.
    public var momentum: Double
    /// Dampening of the gradient's share of the momentum buffer (from the second step on).
    public var dampening: Double
    /// Nesterov momentum; needs momentum > 0 and dampening == 0.
    public var nesterov: Bool
    /// L2 penalty added to the gradient, >= 0: the default of every parameter group.
    public var weightDecay: Double
    /// Ascend the gradient instead of descending it.
    public var maximize: Bool

    public init(lr: Double = 1e-3, momentum: Double = 0, dampening: Double = 0, nesterov: Bool = false,
                weightDecay: Double = 0, maximize: Bool = false) {
        self.lr = lr
        self.momentum = momentum
        self.dampening = dampening
        self.nesterov = nesterov
        self.weightDecay = weightDecay
        self.maximize = maximize
    }

    /// Throws `.invalidArgument` for the options torch's constructor refuses, and for
    /// non-finite values.
    public func validate() throws {
        try requireNonNegative(lr, "SGD learning rate")
        try requireNonNegative(momentum, "SGD momentum")
        try requireNonNegative(weightDecay, "SGD weight decay")
        guard dampening.isFinite else { throw KerfError.invalidArgument("SGD dampening must be finite, got \(dampening)") }
        if nesterov && (momentum <= 0 || dampening != 0) {
            throw KerfError.invalidArgument("SGD: Nesterov momentum requires a momentum > 0 and zero dampening (momentum \(momentum), dampening \(dampening))")
        }
    }
}

/// Throws `.invalidArgument` unless `value` is finite and >= 0.
func requireNonNegative(_ value: Double, _ what: String) throws {
    guard value.isFinite, value >= 0 else {
        throw KerfError.invalidArgument("\(what) must be a finite value >= 0, got \(value)")
    }
}

/// Throws `.invalidArgument` unless 0 <= value < 1.
func requireUnitInterval(_ value: Double, _ what: String) throws {
    guard value >= 0, value < 1 else {
        throw KerfError.invalidArgument("\(what) must be in [0, 1), got \(value)")
    }
}
