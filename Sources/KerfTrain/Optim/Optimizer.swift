import KerfCore
import KerfRuntime

/// A torch.optim optimizer over named float32 parameters: the update rule of `kind`,
/// hyperparameters per parameter group, and the state each parameter keeps between steps.
///
/// Parameters are registered with their shapes up front. Group 0 holds every parameter that no
/// listed `ParameterGroup` names, with the hyperparameters of `kind`; group i (i >= 1) is
/// `groups[i - 1]`. Each group has a current learning rate (torch's `group["lr"]`, initially
/// the group's own or the kind's) and a current momentum (SGD's momentum, Adam's beta1), which
/// a `LearningRateScheduler` sets between steps (`apply(to:)`), as torch's schedulers set
/// them in the optimizer's param_groups.
///
/// A training step calls `update` once per parameter with its gradient. State is created at a
/// parameter's first update, as torch creates it at its first step. Not safe for concurrent
/// use: one `update` at a time (each one runs on up to `threads` threads).
public final class Optimizer {
    public let kind: OptimizerKind
    /// Threads of the update kernels (>= 1).
    public let threads: Int
    /// Shapes of the parameters, by name.
    public let parameterShapes: [String: [Int]]
    /// The listed groups (groups 1...; group 0 is the rest).
    public let groups: [ParameterGroup]
    /// Each group's learning rate at construction (torch's `initial_lr`).
    public let initialLearningRates: [Double]
    /// Each group's current learning rate.
    public internal(set) var learningRates: [Double]
    /// Each group's current momentum: SGD's momentum or Adam's beta1.
    public internal(set) var momenta: [Double]
    /// Each group's weight decay.
    public let weightDecays: [Double]

    let elementCounts: [String: Int]
    let groupOfParameter: [String: Int]
    var states: [String: ParameterState] = [:]

    /// Throws `.invalidArgument` for invalid options, a negative dim, a group naming an
    /// unknown parameter or one already in another group, or `threads` < 0 (0 means one
    /// per core).
    public init(_ kind: OptimizerKind, parameters: [String: [Int]], groups: [ParameterGroup] = [], threads: Int = 1) throws {
        try kind.validate()
        guard threads >= 0 else { throw KerfError.invalidArgument("optimizer threads must be >= 0 (0: one per core), got \(threads)") }
        var counts: [String: Int] = [:]
        for (name, shape) in parameters {
            var count = 1
            for d in shape {
                let (product, overflow) = count.multipliedReportingOverflow(by: d)
                guard d >= 0, !overflow else {
                    throw KerfError.invalidArgument("optimizer: parameter '\(name)' has an invalid shape \(shape)")
                }
                count = product
            }
            counts[name] = count
        }
        var groupOf: [String: Int] = [:]
        for (index, group) in groups.enumerated() {
            for name in group.names {
                guard counts[name] != nil else {
                    throw KerfError.invalidArgument("optimizer: parameter group \(index + 1) names '\(name)', which is not a parameter")
                }
                if let other = groupOf[name] {
                    throw KerfError.invalidArgument("optimizer: parameter '\(name)' is in groups \(other) and \(index + 1)")
                }
                groupOf[name] = index + 1
            }
            if let lr = group.learningRate { try requireNonNegative(lr, "learning rate of parameter group \(index + 1)") }
            if let wd = group.weightDecay { try requireNonNegative(wd, "weight decay of parameter group \(index + 1)") }
        }
        self.kind = kind
        self.threads = SessionOptions(threads: threads).resolvedThreads
        self.parameterShapes = parameters
        self.groups = groups
        self.elementCounts = counts
        self.groupOfParameter = groupOf
        initialLearningRates = [kind.learningRate] + groups.map { $0.learningRate ?? kind.learningRate }
        learningRates = initialLearningRates
        weightDecays = [kind.weightDecay] + groups.map { $0.weightDecay ?? kind.weightDecay }
        momenta = Array(repeating: kind.momentum, count: groups.count + 1)
    }

    public convenience init(_ options: SGD, parameters: [String: [Int]], groups: [ParameterGroup] = [], threads: Int = 1) throws {
        try self.init(.sgd(options), parameters: parameters, groups: groups, threads: threads)
    }

    public convenience init(_ options: Adam, parameters: [String: [Int]], groups: [ParameterGroup] = [], threads: Int = 1) throws {
        try self.init(.adam(options), parameters: parameters, groups: groups, threads: threads)
    }

    /// Number of groups, the default group 0 included.
    public var groupCount: Int { groups.count + 1 }

    /// The group of parameter `name`, or nil when there is no such parameter.
    public func group(of name: String) -> Int? {
        elementCounts[name] == nil ? nil : groupOfParameter[name] ?? 0
    }

    /// Sets the learning rate of `group` for the following updates. Throws `.invalidArgument`
    /// for a group out of range or a negative or non-finite rate.
    public func setLearningRate(_ learningRate: Double, group: Int) throws {
        try checkGroup(group)
        try requireNonNegative(learningRate, "learning rate of parameter group \(group)")
        learningRates[group] = learningRate
    }

    /// Sets the momentum (SGD) or beta1 (Adam) of `group` for the following updates. Throws
    /// `.invalidArgument` for a group out of range or a value the kind's constructor refuses.
    public func setMomentum(_ momentum: Double, group: Int) throws {
        try checkGroup(group)
        try kind.validateMomentum(momentum)
        momenta[group] = momentum
    }

    func checkGroup(_ group: Int) throws {
        guard group >= 0, group < groupCount else {
            throw KerfError.invalidArgument("optimizer: no parameter group \(group) (there are \(groupCount))")
        }
    }
}

/// What an optimizer keeps for one parameter (torch's `optimizer.state[p]`). Tensors have the
/// parameter's shape and are float32.
struct ParameterState {
    /// Adam steps taken (torch keeps it as a float32 tensor, exact to 2^24 steps).
    var step = 0
    /// SGD with momentum, from the first step with a non-zero momentum.
    var momentumBuffer: Tensor?
    /// Adam's moments, from the first step.
    var expAvg: Tensor?
    var expAvgSq: Tensor?
    /// With amsgrad.
    var maxExpAvgSq: Tensor?
}
