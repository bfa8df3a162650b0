import KerfCore

extension LearningRateScheduler {
    /// The state to checkpoint: "last_epoch" (int64 scalar, `stepCount`), "base_lrs" and "lrs"
    /// (float64 [groups]) and, when the schedule cycles momentum, "momenta" (float64 [groups]).
    public func state() -> [String: Tensor] {
        var out: [String: Tensor] = [
            "last_epoch": Tensor(scalar: Int64(stepCount)),
            "base_lrs": Tensor(shape: [baseLearningRates.count], values: baseLearningRates),
            "lrs": Tensor(shape: [learningRates.count], values: learningRates),
        ]
        if let momenta { out["momenta"] = Tensor(shape: [momenta.count], values: momenta) }
        return out
    }

    /// Continues from `state`, as made by `state()` of a scheduler with the same schedule and
    /// number of groups (torch's load_state_dict: base rates included). Throws
    /// `.invalidArgument`, changing nothing, for a missing or unexpected key, a tensor of the
    /// wrong dtype or shape, or an invalid value.
    public mutating func restore(_ state: [String: Tensor]) throws {
        let groups = learningRates.count
        let expected: Set<String> = momenta == nil ? ["last_epoch", "base_lrs", "lrs"] : ["last_epoch", "base_lrs", "lrs", "momenta"]
        guard Set(state.keys) == expected else {
            throw KerfError.invalidArgument("learning-rate scheduler state: keys \(state.keys.sorted()), expected \(expected.sorted())")
        }
        guard let epochTensor = state["last_epoch"], epochTensor.dtype == .int64, epochTensor.shape.isEmpty else {
            throw KerfError.invalidArgument("learning-rate scheduler state: 'last_epoch' must be an int64 scalar")
        }
        let epoch = epochTensor.array(of: Int64.self)[0]
        var limit = Int64.max
        if case let .oneCycle(_, totalSteps, _, _, _, _, _, _, _, _) = schedule { limit = Int64(totalSteps) }
        guard epoch >= 0, epoch <= limit else {
            throw KerfError.invalidArgument("learning-rate scheduler state: 'last_epoch' \(epoch) is out of range")
        }
        func doubles(_ key: String) throws -> [Double] {
            guard let t = state[key], t.dtype == .double, t.shape == [groups] else {
                throw KerfError.invalidArgument("learning-rate scheduler state: '\(key)' must be a double tensor of shape [\(groups)]")
            }
            let values = t.array(of: Double.self)
            for v in values where !(v.isFinite && v >= 0) {
                throw KerfError.invalidArgument("learning-rate scheduler state: '\(key)' holds \(v)")
            }
            return values
        }
        let base = try doubles("base_lrs"), lrs = try doubles("lrs")
        let restoredMomenta = momenta == nil ? nil : try doubles("momenta")
        stepCount = Int(epoch)
        baseLearningRates = base
        learningRates = lrs
        momenta = restoredMomenta
    }
}
