import ArgumentParser
import FoundationEssentials
import KerfCompress
import KerfCore
import KerfTrain

/// The options `kerf train` and `kerf distill` share: optimizer, schedule, epochs and batches,
/// early stopping, checkpoints, threads, and what is written besides the model.
struct TrainingArguments: ParsableArguments {
    @Option(help: "An .npz file of validation data, evaluated after each epoch.") var validation: String?
    @Option(help: "sgd, adam or adamw.") var optimizer: String = "sgd"
    @Option(help: "Learning rate (default: 0.01 for SGD, 1e-3 for Adam/AdamW).") var lr: Double?
    @Option(help: "SGD momentum.") var momentum: Double = 0
    @Flag(help: "SGD Nesterov momentum.") var nesterov = false
    @Option(help: "Weight decay (default: 0; AdamW 0.01).") var weightDecay: Double?
    @Option(help: "constant, cosine, step, exponential, warmup-linear, warmup-cosine or one-cycle.") var schedule: String = "constant"
    @Option(help: "Warmup steps of warmup-* schedules.") var warmupSteps: Int = 0
    @Option(help: "step: steps between decays.") var stepSize: Int = 1
    @Option(help: "step / exponential: the decay factor.") var gamma: Double = 0.1
    @Option(help: "Clip the gradients' global L2 norm to this.") var maxGradNorm: Double?
    @Option(help: "Epochs over DATA.") var epochs: Int = 1
    @Option(help: "Samples per batch.") var batchSize: Int = 32
    @Option(help: "Seed of the shuffling (and of --init).") var seed: UInt64 = 0
    @Option(help: "Stop after this many epochs without a better validation loss.") var patience: Int?
    @Option(parsing: .upToNextOption, help: "Initializer names, node names or op types to keep fixed.") var frozen: [String] = []
    @Flag(help: "Train with the graph as exported (PyTorch's model.eval()): BatchNormalization on its running statistics, no Dropout.") var evalMode = false
    @Flag(inversion: .prefixedNo, help: "Keep the exact zeros of pruned weights (rank >= 2, with zeros and other values) through training.")
    var keepSparsity = true
    @Option(help: "Prune the weights gradually to this sparsity while training (Zhu & Gupta's cubic schedule).") var gradualPrune: Double?
    @Option(help: "Gradual pruning: the optimizer update of the first pruning step.") var gradualStart: Int = 0
    @Option(help: "Gradual pruning: the update of the last (default: three quarters of the run).") var gradualEnd: Int?
    @Option(help: "Gradual pruning: updates between pruning steps (default: a tenth of the span).") var gradualEvery: Int?
    @Option(help: "Gradual pruning: magnitude, or movement (the weights training moves towards zero go first).")
    var gradualCriterion: String = "magnitude"
    @Option(help: "Quantization-aware training, the model then written as int8: static (QDQ; activation ranges calibrated, then moved by each batch) or dynamic.")
    var qat: String?
    @Option(help: "--qat static: an .npz file of inputs to calibrate the initial activation ranges on (default: DATA's).") var calibration: String?
    @Option(help: "--qat: how much of its range an activation keeps at each batch (1 freezes the ranges).") var qatMomentum: Double = 0.99
    @Option(help: "--qat: quantized activation type, uint8 or int8.") var activationType: String = "uint8"
    @Option(help: "Write a checkpoint here after each epoch.") var checkpoint: String?
    @Option(help: "Continue a run from this checkpoint.") var resume: String?
    @Option(help: "Threads per run (0 = one per core).") var threads: Int = 0
    @Option(help: "Also write the report as JSON to this file.") var report: String?
    @Option(help: "Also draw the training curves (losses and validation accuracy per epoch) as an SVG chart.") var plot: String?

    var optimizerKind: OptimizerKind {
        get throws {
            switch optimizer {
            case "sgd": return .sgd(SGD(lr: lr ?? 0.01, momentum: momentum, nesterov: nesterov, weightDecay: weightDecay ?? 0))
            case "adam": return .adam(Adam(lr: lr ?? 1e-3, weightDecay: weightDecay ?? 0))
            case "adamw": return .adam(Adam.adamW(lr: lr ?? 1e-3, weightDecay: weightDecay ?? 1e-2))
            default: throw KerfError.invalidArgument("--optimizer must be sgd, adam or adamw, got '\(optimizer)'")
            }
        }
    }

    /// The schedule over `samples` training samples per epoch.
    func learningSchedule(samples: Int) throws -> LearningRateSchedule {
        let totalSteps = (samples + batchSize - 1) / max(batchSize, 1) * epochs
        switch schedule {
        case "constant": return .constant
        case "cosine": return .cosineAnnealing(tMax: totalSteps)
        case "step": return .step(stepSize: stepSize, gamma: gamma)
        case "exponential": return .exponential(gamma: gamma)
        case "warmup-linear": return .linearWarmup(warmupSteps: warmupSteps, totalSteps: totalSteps, then: .linear)
        case "warmup-cosine": return .linearWarmup(warmupSteps: warmupSteps, totalSteps: totalSteps, then: .cosine)
        case "one-cycle": return .oneCycle(totalSteps: totalSteps)
        default: throw KerfError.invalidArgument("--schedule must be constant, cosine, step, exponential, warmup-linear, warmup-cosine or one-cycle, got '\(schedule)'")
        }
    }

    func trainerOptions(samples: Int, initialization: Initialization? = nil) throws -> TrainerOptions {
        guard let criterion = GradualPruning.Criterion(rawValue: gradualCriterion) else {
            throw KerfError.invalidArgument("--gradual-criterion must be magnitude or movement, got '\(gradualCriterion)'")
        }
        return TrainerOptions(optimizer: try optimizerKind, schedule: try learningSchedule(samples: samples), maxGradientNorm: maxGradNorm,
                       threads: threads, initialization: initialization, initializationSeed: seed,
                       trainingMode: TrainingModeOptions(batchNormalization: !evalMode, dropout: !evalMode, seed: Int64(bitPattern: seed),
                                                         quantizationRangeMomentum: Float(qatMomentum)),
                       keepSparsity: keepSparsity,
                       gradualPruning: gradualPrune.map { GradualPruning(finalSparsity: $0, startStep: gradualStart, endStep: gradualEnd,
                                                                         frequency: gradualEvery, criterion: criterion) })
    }

    /// The loop's options, with a progress bar labelled `label` on a terminal.
    func loopOptions(_ label: String) -> TrainingLoopOptions {
        let bar = ProgressBar(label)
        return TrainingLoopOptions(epochs: epochs, batchSize: batchSize, seed: seed, patience: patience,
                                   progress: { p in bar.update(p.step, p.totalSteps ?? 0, "epoch \(p.epoch + 1) loss \(decimal(p.loss, places: 4))") },
                                   checkpointPath: checkpoint)
    }

    /// The arrays of an .npz file by feed name. When one model input has no array of its name
    /// and one array named after no input or `labels` has its dtype (any, when undeclared), that
    /// array feeds it.
    func arrays(_ path: String, inputs: [ValueInfo], labels: String?) throws -> [String: Tensor] {
        var arrays = Dictionary(try NumpyFile.readArchive(path: path).map { ($0.name, $0.tensor) }, uniquingKeysWith: { a, _ in a })
        let unfed = inputs.filter { arrays[$0.name] == nil }
        if unfed.count == 1 {
            let unmatched = arrays.filter { entry in
                !inputs.contains { $0.name == entry.key } && entry.key != labels && (unfed[0].dtype == nil || unfed[0].dtype == entry.value.dtype)
            }
            if unmatched.count == 1, let only = unmatched.first {
                arrays[unfed[0].name] = arrays.removeValue(forKey: only.key)
            }
        }
        return arrays
    }

    /// `model` prepared for the quantization-aware training --qat asks for (calibrated on
    /// --calibration, else on `data`'s model inputs), or nil without --qat.
    func quantizationAware(_ model: Model, data: [String: Tensor]) throws -> QuantizationAwareModel? {
        guard let qat else {
            guard calibration == nil else { throw KerfError.invalidArgument("--calibration is for quantization-aware training: give --qat") }
            return nil
        }
        var options = try quantizeOptions(mode: qat, modeFlag: "--qat", activationType: activationType)
        options.session.threads = threads
        let inputs = Set(model.graph.runtimeInputs.map(\.name))
        let arrays = try calibration.map { try self.arrays($0, inputs: model.graph.runtimeInputs, labels: nil) } ?? data
        let source = try ArrayCalibration(arrays.filter { inputs.contains($0.key) }, graph: model.graph, batchSize: batchSize)
        return try QuantizationAwareModel(model, options: options, calibration: options.mode == .static ? source : nil)
    }

    /// Saves `trained` to `destination`, as int8 when `qat` prepared it; writes the JSON report
    /// and the SVG curves that were asked for, and prints the per-epoch table.
    func finish(_ result: TrainingReport, trained: Model, qat: QuantizationAwareModel?, wrote destination: String) throws {
        let quantization = try qat?.quantize(trained)
        try trained.save(path: destination)
        var json = try result.json()
        if let quantization { json = try jsonObject(json, adding: "quantization", try quantization.json()) }
        if let report { try FileIO.writeAtomically(Data(json.utf8), to: report) }
        if let plot { try FileIO.writeAtomically(Data(curves(result).utf8), to: plot) }
        print(table(result))
        if let quantization { print(summary(quantization)) }
        print("wrote \(destination)")
    }

    /// Training and validation loss per epoch, validation accuracy on the right-hand axis.
    private func curves(_ r: TrainingReport) -> String {
        func series(_ name: String, rightAxis: Bool = false, dashed: Bool = false, _ value: (EpochRecord) -> Double?) -> ChartSeries? {
            let points = r.epochs.compactMap { e in value(e).map { (x: Double(e.epoch + 1), y: $0) } }
            return points.isEmpty ? nil : ChartSeries(name: name, points: points, rightAxis: rightAxis, dashed: dashed)
        }
        let lines = [series("training loss") { $0.loss }, series("validation loss", dashed: true) { $0.validationLoss },
                     series("validation accuracy", rightAxis: true) { $0.validationAccuracy }].compactMap { $0 }
        return lineChartSVG(title: "Training (\(r.steps) steps)", xLabel: "epoch", yLabel: "loss",
                            rightLabel: lines.contains(where: \.rightAxis) ? "accuracy" : nil, series: lines)
    }

    /// The per-epoch table for a terminal.
    private func table(_ r: TrainingReport) -> String {
        var lines = ["epoch  train loss  valid loss  valid acc  seconds"]
        for e in r.epochs {
            let best = e.epoch == r.bestEpoch ? "  *" : ""
            lines.append("\(String(e.epoch + 1).padding(to: 5))  \(decimal(e.loss, places: 4).padding(to: 10))  "
                         + "\((e.validationLoss.map { decimal($0, places: 4) } ?? "-").padding(to: 10))  "
                         + "\((e.validationAccuracy.map { decimal($0, places: 4) } ?? "-").padding(to: 9))  "
                         + decimal(e.seconds, places: 2) + best)
        }
        lines.append("\(r.steps) steps, \(decimal(r.secondsPerStep * 1000, places: 3)) ms per step"
                     + (r.stoppedEarly ? ", stopped early" : "") + (r.bestEpoch.map { ", best epoch \($0 + 1) (*)" } ?? ""))
        let pruned = r.sparsity.filter { $0.sparsity > 0 }
        if !pruned.isEmpty {
            lines.append("sparsity kept: " + pruned.map { "\($0.name) \(percent($0.sparsity))" }.joined(separator: ", "))
        }
        return lines.joined(separator: "\n")
    }
}
