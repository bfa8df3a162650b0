import KerfCore

/// Names of the state tensors of an `Optimizer`, "<slot>/<parameter name>" or
/// "param_groups/<group>/<value>" (the slot comes first, so names may contain "/").
enum OptimizerStateKey {
    static let step = "step"
    static let momentumBuffer = "momentum_buffer"
    static let expAvg = "exp_avg"
    static let expAvgSq = "exp_avg_sq"
    static let maxExpAvgSq = "max_exp_avg_sq"
    static let groups = "param_groups"
    static let slots: Set<String> = [step, momentumBuffer, expAvg, expAvgSq, maxExpAvgSq]
}

extension Optimizer {
    /// The state to checkpoint, torch's `optimizer.state_dict()` by name:
    /// - "momentum_buffer/<name>" (SGD with momentum), "exp_avg/<name>", "exp_avg_sq/<name>",
    ///   "max_exp_avg_sq/<name>" (amsgrad): float tensors of the parameter's shape;
    /// - "step/<name>" (Adam): int64 scalar, the steps the parameter has taken;
    /// - "param_groups/<g>/lr" and "param_groups/<g>/momentum" (SGD momentum, Adam beta1):
    ///   float64 scalars, each group's current values.
    /// Parameters not updated yet have no entries. The tensors are snapshots: later updates do
    /// not change them.
    public func state() -> [String: Tensor] {
        typealias K = OptimizerStateKey
        var out: [String: Tensor] = [:]
        for (name, s) in states {
            if let t = s.momentumBuffer { out["\(K.momentumBuffer)/\(name)"] = t }
            if let t = s.expAvg { out["\(K.expAvg)/\(name)"] = t }
            if let t = s.expAvgSq { out["\(K.expAvgSq)/\(name)"] = t }
            if let t = s.maxExpAvgSq { out["\(K.maxExpAvgSq)/\(name)"] = t }
            if case .adam = kind, s.expAvg != nil { out["\(K.step)/\(name)"] = Tensor(scalar: Int64(s.step)) }
        }
        for g in 0..<groupCount {
            out["\(K.groups)/\(g)/lr"] = Tensor(scalar: learningRates[g])
            out["\(K.groups)/\(g)/momentum"] = Tensor(scalar: momenta[g])
        }
        return out
    }

    /// Replaces the optimizer's state with `state`, as made by `state()` of an optimizer of the
    /// same kind and parameters; parameters without entries start afresh. Throws
    /// `.invalidArgument` (and changes nothing) for an unknown key or parameter, a missing
    /// group value or Adam slot, a tensor of the wrong dtype or shape, or an invalid value.
    public func restore(_ state: [String: Tensor]) throws {
        typealias K = OptimizerStateKey
        var restored: [String: ParameterState] = [:]
        var lrs = learningRates, moms = momenta
        var groupValuesSeen = Set<String>()
        for (key, tensor) in state {
            guard let slash = key.firstIndex(of: "/") else {
                throw KerfError.invalidArgument("optimizer state: unexpected key '\(key)'")
            }
            let slot = String(key[..<slash]), rest = String(key[key.index(after: slash)...])
            if slot == K.groups {
                try restoreGroupValue(key: key, rest: rest, tensor, learningRates: &lrs, momenta: &moms)
                groupValuesSeen.insert(rest)
                continue
            }
            guard K.slots.contains(slot), let shape = parameterShapes[rest] else {
                throw KerfError.invalidArgument("optimizer state: unexpected key '\(key)' (no such slot or parameter)")
            }
            var s = restored[rest] ?? ParameterState()
            if slot == K.step {
                guard case .adam = kind else { throw KerfError.invalidArgument("optimizer state: SGD keeps no '\(key)'") }
                guard tensor.dtype == .int64, tensor.shape.isEmpty else {
                    throw KerfError.invalidArgument("optimizer state: '\(key)' must be an int64 scalar, got \(tensor.dtype) \(tensor.shape)")
                }
                let step = tensor.array(of: Int64.self)[0]
                guard step >= 0 else { throw KerfError.invalidArgument("optimizer state: '\(key)' is negative (\(step))") }
                s.step = Int(step)
            } else {
                guard tensor.dtype == .float, tensor.shape == shape else {
                    throw KerfError.invalidArgument("optimizer state: '\(key)' must be a float tensor of shape \(shape), got \(tensor.dtype) \(tensor.shape)")
                }
                switch (slot, kind) {
                case (K.momentumBuffer, .sgd): s.momentumBuffer = tensor
                case (K.expAvg, .adam): s.expAvg = tensor
                case (K.expAvgSq, .adam): s.expAvgSq = tensor
                case (K.maxExpAvgSq, .adam(let o)) where o.amsgrad: s.maxExpAvgSq = tensor
                default: throw KerfError.invalidArgument("optimizer state: '\(key)' does not belong to this optimizer's kind")
                }
            }
            restored[rest] = s
        }
        for g in 0..<groupCount {
            for value in ["lr", "momentum"] where !groupValuesSeen.contains("\(g)/\(value)") {
                throw KerfError.invalidArgument("optimizer state: '\(K.groups)/\(g)/\(value)' is missing")
            }
        }
        if case .adam(let o) = kind {
            for (name, s) in restored {
                let complete = s.expAvg != nil && s.expAvgSq != nil && (s.maxExpAvgSq != nil || !o.amsgrad)
                guard complete, state["\(K.step)/\(name)"] != nil else {
                    throw KerfError.invalidArgument("optimizer state: parameter '\(name)' lacks some of step, exp_avg, exp_avg_sq\(o.amsgrad ? ", max_exp_avg_sq" : "")")
                }
            }
        }
        states = restored
        learningRates = lrs
        momenta = moms
    }

    private func restoreGroupValue(key: String, rest: String, _ tensor: Tensor,
                                   learningRates: inout [Double], momenta: inout [Double]) throws {
        let parts = rest.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let g = Int(parts[0]), g >= 0, g < groupCount, parts[1] == "lr" || parts[1] == "momentum" else {
            throw KerfError.invalidArgument("optimizer state: unexpected key '\(key)' (this optimizer has \(groupCount) parameter groups)")
        }
        guard tensor.dtype == .double, tensor.shape.isEmpty else {
            throw KerfError.invalidArgument("optimizer state: '\(key)' must be a double scalar, got \(tensor.dtype) \(tensor.shape)")
        }
        let value = tensor.array(of: Double.self)[0]
        if parts[1] == "lr" {
            try requireNonNegative(value, "optimizer state '\(key)'")
            learningRates[g] = value
        } else {
            do { try kind.validateMomentum(value) } catch let e as KerfError { throw e.prefixed("optimizer state '\(key)'") }
            momenta[g] = value
        }
    }
}
