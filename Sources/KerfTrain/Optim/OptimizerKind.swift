/// The update rule of an `Optimizer`, with its options.
public enum OptimizerKind: Equatable, Sendable {
    case sgd(SGD)
    /// Adam, or AdamW with `decoupledWeightDecay` (`Adam.adamW(...)`).
    case adam(Adam)

    /// The default learning rate of the parameter groups.
    var learningRate: Double {
        switch self {
        case .sgd(let o): return o.lr
        case .adam(let o): return o.lr
        }
    }

    /// The default weight decay of the parameter groups.
    var weightDecay: Double {
        switch self {
        case .sgd(let o): return o.weightDecay
        case .adam(let o): return o.weightDecay
        }
    }

    /// SGD's momentum or Adam's beta1: the value a one-cycle schedule may vary per group.
    var momentum: Double {
        switch self {
        case .sgd(let o): return o.momentum
        case .adam(let o): return o.beta1
        }
    }

    func validate() throws {
        switch self {
        case .sgd(let o): try o.validate()
        case .adam(let o): try o.validate()
        }
    }

    /// Throws `.invalidArgument` unless `value` is a valid momentum (SGD) or beta1 (Adam).
    func validateMomentum(_ value: Double) throws {
        switch self {
        case .sgd: try requireNonNegative(value, "SGD momentum")
        case .adam: try requireUnitInterval(value, "Adam beta1")
        }
    }
}
