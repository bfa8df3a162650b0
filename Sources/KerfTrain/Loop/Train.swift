import KerfCore
#if canImport(Glibc)
import Glibc
#endif

/// Trains `trainer` on `data` for `options.epochs` epochs (or `maxSteps` steps): one optimizer
/// step per batch, the validation loss (and accuracy, for a cross-entropy loss) after each
/// epoch, early stopping, and checkpoints. `resumeFrom` continues a run from a checkpoint this
/// loop wrote, with the same data and options: it ends with the weights an uninterrupted run
/// ends with.
public func train(_ trainer: Trainer, data: TrainingData, validation: TrainingData? = nil,
                  options: TrainingLoopOptions = TrainingLoopOptions(), resumeFrom checkpoint: String? = nil) throws -> TrainingReport {
    try options.validate()
    let samples = try data.sampleCount()
    _ = try validation?.sampleCount()
    let batchesPerEpoch = samples.map { ($0 + options.batchSize - 1) / options.batchSize }
    let totalSteps = batchesPerEpoch.map { b in min(b * options.epochs, options.maxSteps ?? Int.max) } ?? options.maxSteps
    if trainer.plannedSteps == nil { trainer.plannedSteps = totalSteps }
    var state = LoopState()
    if let checkpoint { state = try LoopState(try trainer.restore(from: checkpoint)) }
    var report = TrainingReport()
    let started = monotonicSeconds()
    var stepsThisCall = 0
    var epochStarted = monotonicSeconds()

    func saveCheckpoint() throws {
        if let path = options.checkpointPath { try trainer.checkpoint(to: path, extra: state.tensors()) }
    }

    var finished = false
    while state.epoch < options.epochs && !finished {
        let order = samples.map { options.shuffle ? shuffledOrder($0, seed: options.seed, epoch: state.epoch) : Array(0..<$0) } ?? []
        while let feeds = try data.batch(epoch: state.epoch, index: state.batch, order: order, batchSize: options.batchSize) {
            let loss = try trainer.step(feeds)
            state.epochLossSum += loss
            state.epochBatches += 1
            state.batch += 1
            stepsThisCall += 1
            if let progress = options.progress {
                let p = TrainingProgress(step: trainer.stepCount, totalSteps: totalSteps, epoch: state.epoch, loss: loss,
                                         learningRate: trainer.learningRate)
                guard progress(p) else { throw KerfError.cancelled("training was cancelled at step \(trainer.stepCount)") }
            }
            if options.checkpointEvery > 0 && trainer.stepCount % options.checkpointEvery == 0 { try saveCheckpoint() }
            if let maxSteps = options.maxSteps, trainer.stepCount >= maxSteps {
                finished = true
                break
            }
        }
        guard state.epochBatches > 0 else { throw KerfError.invalidArgument("epoch \(state.epoch) has no batches") }
        var record = EpochRecord(epoch: state.epoch, loss: state.epochLossSum / Double(state.epochBatches), validationLoss: nil,
                                 validationAccuracy: nil, steps: state.epochBatches, seconds: monotonicSeconds() - epochStarted)
        if let validation {
            let (loss, accuracy) = try evaluate(trainer, on: validation, batchSize: options.batchSize)
            record.validationLoss = loss
            record.validationAccuracy = accuracy
            if loss < state.bestLoss {
                state.bestLoss = loss
                state.bestEpoch = state.epoch
                state.epochsWithoutImprovement = 0
                if options.restoreBest { state.bestParameters = trainer.parameters() }
            } else {
                state.epochsWithoutImprovement += 1
            }
        }
        state.records.append(record)
        state.epoch += 1
        state.batch = 0
        state.epochLossSum = 0
        state.epochBatches = 0
        epochStarted = monotonicSeconds()
        if let patience = options.patience, validation != nil, state.epochsWithoutImprovement >= patience {
            report.stoppedEarly = true
            finished = true
        }
        try saveCheckpoint()
    }
    if options.restoreBest && validation != nil {
        for (name, value) in state.bestParameters { try trainer.setParameter(name, value) }
    }
    report.epochs = state.records
    report.bestEpoch = state.bestEpoch
    report.steps = trainer.stepCount
    report.parameters = trainer.parameterNamesIfBuilt
    report.sparsity = report.parameters.compactMap { name in
        trainer.parameterValue(name).flatMap { $0.rank >= 2 ? TrainingReport.WeightSparsity(name: name, elements: $0.count, sparsity: zeroFraction($0)) : nil }
    }
    report.secondsPerStep = stepsThisCall > 0 ? (monotonicSeconds() - started) / Double(stepsThisCall) : 0
    return report
}

/// The loss (weighted by samples per batch) and, for a cross-entropy first term, the top-1
/// accuracy of the trainer's current parameters on `data`, in order, in batches.
public func evaluate(_ trainer: Trainer, on data: TrainingData, batchSize: Int) throws -> (loss: Double, accuracy: Double?) {
    let samples = try data.sampleCount()
    let order = samples.map { Array(0..<$0) } ?? []
    var lossSum = 0.0, weightSum = 0.0, correct = 0, counted = 0
    var index = 0
    while let feeds = try data.batch(epoch: 0, index: index, order: order, batchSize: batchSize) {
        let result = try trainer.evaluateBatch(feeds)
        lossSum += result.loss * Double(result.samples)
        weightSum += Double(result.samples)
        if let c = result.correct {
            correct += c
            counted += result.samples
        }
        index += 1
    }
    guard weightSum > 0 else { throw KerfError.invalidArgument("the validation data has no batches") }
    return (lossSum / weightSum, counted > 0 ? Double(correct) / Double(counted) : nil)
}

func monotonicSeconds() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_MONOTONIC, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
}
