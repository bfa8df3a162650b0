/// Parameters that share hyperparameters, as one of torch's `param_groups`: for example the
/// biases and normalization scales, kept free of weight decay.
public struct ParameterGroup: Equatable, Sendable {
    /// Names of the parameters in the group; each parameter belongs to at most one group.
    public var names: [String]
    /// The group's initial learning rate; nil takes the optimizer's.
    public var learningRate: Double?
    /// The group's weight decay; nil takes the optimizer's.
    public var weightDecay: Double?

    public init(names: [String], learningRate: Double? = nil, weightDecay: Double? = nil) {
        self.names = names
        self.learningRate = learningRate
        self.weightDecay = weightDecay
    }
}
