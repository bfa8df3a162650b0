import KerfCore

/// Where a training loop is, for checkpoints: resuming from it continues exactly where the
/// loop stood (the next batch of the same epoch, same shuffled order).
struct LoopState {
    var epoch = 0
    /// The next batch of `epoch`.
    var batch = 0
    var epochLossSum = 0.0
    var epochBatches = 0
    var records: [EpochRecord] = []
    var bestLoss = Double.infinity
    var bestEpoch: Int?
    var epochsWithoutImprovement = 0
    /// The parameters at the best epoch (when `restoreBest`).
    var bestParameters: [String: Tensor] = [:]

    /// As named tensors (prefix "loop/"): integers as int64, numbers as float64.
    func tensors() -> [(String, Tensor)] {
        var out: [(String, Tensor)] = [
            ("loop/position", Tensor(shape: [5], values: [Int64(epoch), Int64(batch), Int64(epochBatches),
                                                          Int64(bestEpoch ?? -1), Int64(epochsWithoutImprovement)])),
            ("loop/numbers", Tensor(shape: [2], values: [epochLossSum, bestLoss])),
        ]
        // One row per finished epoch: epoch, loss, validation loss, accuracy (NaN: none), steps, seconds.
        let rows = records.flatMap { r in
            [Double(r.epoch), r.loss, r.validationLoss ?? .nan, r.validationAccuracy ?? .nan, Double(r.steps), r.seconds]
        }
        out.append(("loop/records", Tensor(shape: [records.count, 6], values: rows)))
        for (name, t) in bestParameters.sorted(by: { $0.key < $1.key }) { out.append(("best/" + name, t)) }
        return out
    }

    init() {}

    init(_ arrays: [String: Tensor]) throws {
        guard let position = arrays["loop/position"], position.dtype == .int64, position.count == 5,
              let numbers = arrays["loop/numbers"], numbers.dtype == .double, numbers.count == 2,
              let records = arrays["loop/records"], records.dtype == .double, records.rank == 2, records.shape[1] == 6 else {
            throw KerfError.invalidArgument("the checkpoint has no training-loop state (it was written by Trainer.checkpoint, not by train)")
        }
        let p = position.array(of: Int64.self).map { Int($0) }
        epoch = p[0]
        batch = p[1]
        epochBatches = p[2]
        bestEpoch = p[3] >= 0 ? p[3] : nil
        epochsWithoutImprovement = p[4]
        let n = numbers.array(of: Double.self)
        epochLossSum = n[0]
        bestLoss = n[1]
        let r = records.array(of: Double.self)
        self.records = (0..<records.shape[0]).map { i in
            let row = Array(r[(i * 6)..<(i * 6 + 6)])
            return EpochRecord(epoch: Int(row[0]), loss: row[1], validationLoss: row[2].isNaN ? nil : row[2],
                               validationAccuracy: row[3].isNaN ? nil : row[3], steps: Int(row[4]), seconds: row[5])
        }
        for (name, t) in arrays where name.hasPrefix("best/") { bestParameters[String(name.dropFirst(5))] = t }
    }
}
