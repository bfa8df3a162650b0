import KerfCore

/// Checkpoints: one uncompressed .npz archive (readable by numpy) holding everything a run
/// needs to continue with the same results: "param/<name>" (current values), "optim/..."
/// (optimizer state), "sched/..." (schedule state), "state/<name>" (running statistics),
/// "movement/<name>" (movement pruning's scores), "trainer/step" (updates, accumulated calls,
/// forward runs) and "trainer/targets" (the
/// dtype and rank of each loss target, to rebuild the training graph), accumulated gradients
/// "accum/<name>", and any extra arrays of the caller (the training loop's position).
extension Trainer {
    /// Writes a checkpoint to `path` atomically (a failure leaves an existing file intact).
    /// Throws before the first run (nothing to save yet).
    public func checkpoint(to path: String, extra: [(String, Tensor)] = []) throws {
        let c = try compiledForCheckpoint()
        var arrays: [(String, Tensor)] = []
        for name in c.training.parameters { if let v = parameterValue(name) { arrays.append(("param/" + name, v)) } }
        for (key, t) in c.optimizer.state().sorted(by: { $0.key < $1.key }) { arrays.append(("optim/" + key, t)) }
        for (key, t) in (schedulerState() ?? [:]).sorted(by: { $0.key < $1.key }) { arrays.append(("sched/" + key, t)) }
        for (name, t) in accumulatedGradients().sorted(by: { $0.key < $1.key }) { arrays.append(("accum/" + name, t)) }
        for (name, t) in stateValues().sorted(by: { $0.key < $1.key }) { arrays.append(("state/" + name, t)) }
        for (name, t) in movementScoreTensors().sorted(by: { $0.key < $1.key }) { arrays.append(("movement/" + name, t)) }
        arrays.append(("trainer/step", Tensor(shape: [3], values: [Int64(stepCount), Int64(accumulatedCallCount), Int64(forwardRuns)])))
        let targets = loss.targetNames.map { name -> [Int64] in
            let t = c.targetTypes[name]
            return [Int64(t?.dtype.rawValue ?? 0), Int64(t?.rank ?? -1)]
        }
        arrays.append(("trainer/targets", Tensor(shape: [targets.count, 2], values: targets.flatMap { $0 })))
        try NumpyFile.writeArchive(arrays + extra.map { ($0.0, $0.1) }, path: path)
    }

    /// Continues from the checkpoint at `path`, written by a trainer of the same model, loss,
    /// parameters and options: parameters, optimizer and schedule state, step count. Returns
    /// the arrays the trainer did not use (the training loop's). Throws, changing nothing,
    /// when the checkpoint does not fit.
    @discardableResult
    public func restore(from path: String) throws -> [String: Tensor] {
        let arrays = Dictionary(try NumpyFile.readArchive(path: path).map { ($0.name, $0.tensor) }, uniquingKeysWith: { a, _ in a })
        guard let step = arrays["trainer/step"], step.dtype == .int64, step.count == 3,
              let targets = arrays["trainer/targets"], targets.dtype == .int64, targets.rank == 2,
              targets.shape == [loss.targetNames.count, 2] else {
            throw KerfError.invalidArgument("'\(path)' is not a Kerf training checkpoint of this loss")
        }
        var targetTypes: [String: (dtype: DType, rank: Int)] = [:]
        let t = targets.array(of: Int64.self)
        for (i, name) in loss.targetNames.enumerated() {
            guard let raw = Int32(exactly: t[2 * i]), let dtype = DType(rawValue: raw), t[2 * i + 1] >= 0 else {
                throw KerfError.invalidArgument("'\(path)': the checkpoint's type of target '\(name)' is invalid")
            }
            targetTypes[name] = (dtype, Int(t[2 * i + 1]))
        }
        var rest: [String: Tensor] = [:]
        var parameters: [String: Tensor] = [:], optimizer: [String: Tensor] = [:], schedule: [String: Tensor] = [:]
        var accumulated: [String: Tensor] = [:], state: [String: Tensor] = [:], movement: [String: Tensor] = [:]
        for (key, value) in arrays {
            if key.hasPrefix("param/") { parameters[String(key.dropFirst(6))] = value }
            else if key.hasPrefix("optim/") { optimizer[String(key.dropFirst(6))] = value }
            else if key.hasPrefix("sched/") { schedule[String(key.dropFirst(6))] = value }
            else if key.hasPrefix("accum/") { accumulated[String(key.dropFirst(6))] = value }
            else if key.hasPrefix("state/") { state[String(key.dropFirst(6))] = value }
            else if key.hasPrefix("movement/") { movement[String(key.dropFirst(9))] = value }
            else if !key.hasPrefix("trainer/") { rest[key] = value }
        }
        let counts = step.array(of: Int64.self)
        try restoreState(targetTypes: targetTypes, parameters: parameters, optimizer: optimizer, schedule: schedule,
                         accumulated: accumulated, stepCount: Int(counts[0]), accumulatedCalls: Int(counts[1]), state: state,
                         forwardRuns: Int(counts[2]), movementScores: movement)
        return rest
    }
}
